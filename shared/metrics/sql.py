"""A catalog measure as SQL that PostgreSQL (the hot tier) and DuckDB (the tiers' views) both run.

Evaluation times sit on a grid: index ``i`` is the instant ``i * grain`` seconds after the epoch,
and its window holds the rows with ``(i - K) * grain <= ts < i * grain``, ``K`` = window / grain.
Each row is placed in its grain bucket and repeated for the ``K`` evaluation times whose windows
hold it, so one query answers every evaluation time of a range at once: one time for a live run,
thousands for a backtest. The SQL uses only what both engines share (``FILTER``, window functions,
``generate_series``, ``to_timestamp``), and the catalog's filters are structured values, never
SQL text, so the catalog cannot inject SQL.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from shared.contract.canary import not_canary_sql
from shared.contract.registry.loader import Registry
from shared.metrics.catalog import Measure, Metric, Scalar
from shared.policy.retention import HOT_RETENTION_DAYS
from shared.storage.hot.tables import api_calls_log, telemetry_events
from shared.storage.layout import EVENT_TABLES
from shared.storage.warm.columns import PROPS_PREFIX, prop_sql, prop_types

Dialect = Literal["postgres", "duckdb"]
TABLES = {"telemetry_events": telemetry_events, "api_calls_log": api_calls_log}


class UnknownField(ValueError):
    """A measure reads a field that is neither a column of its table nor a registry prop."""


@dataclass(frozen=True)
class Grid:
    """Evaluation indexes ``first..last`` of a grain, each window ``grains`` grains long."""

    grain_s: int
    grains: int
    first: int
    last: int

    @property
    def rows_from_sql(self) -> str:
        """The oldest row time any window of the grid holds."""
        return f"to_timestamp({(self.first - self.grains) * self.grain_s})"

    @property
    def rows_to_sql(self) -> str:
        """The time just past the newest row any window holds."""
        return f"to_timestamp({self.last * self.grain_s})"


@dataclass(frozen=True)
class RelativeGrid:
    """The evaluation times of the last ``days`` before the query runs, as SQL over ``now()``:
    what a materialized view recomputes on each refresh."""

    grain_s: int
    grains: int
    days: int

    @property
    def last(self) -> str:
        """The newest evaluation index (SQL)."""
        return f"CAST(floor(extract(epoch FROM now()) / {self.grain_s}) AS BIGINT)"

    @property
    def first(self) -> str:
        """The oldest evaluation index (SQL)."""
        return f"({self.last} - {self.days * 86400 // self.grain_s})"

    @property
    def rows_from_sql(self) -> str:
        """The oldest row time any window holds (SQL)."""
        return f"to_timestamp(({self.first} - {self.grains}) * {self.grain_s})"

    @property
    def rows_to_sql(self) -> str:
        """The time just past the newest row any window holds (SQL)."""
        return f"to_timestamp({self.last} * {self.grain_s})"


@dataclass(frozen=True)
class Span:
    """One stretch of time, ``[start_s, end_s)`` in epoch seconds: a breakdown's period."""

    start_s: int
    end_s: int

    @property
    def rows_from_sql(self) -> str:
        """The oldest row time."""
        return f"to_timestamp({self.start_s})"

    @property
    def rows_to_sql(self) -> str:
        """The time just past the newest row."""
        return f"to_timestamp({self.end_s})"


AnyGrid = Grid | RelativeGrid


def literal(value: Scalar) -> str:
    """A catalog filter value as an SQL literal."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def field_sql(measure: Measure, field: str, dialect: Dialect, registry: Registry) -> str:
    """The SQL expression of a measure's field: a column, or a typed prop."""
    table = TABLES[measure.table]
    if field in table.columns and field != "props":
        return f'"{field}"'
    if measure.table == "telemetry_events":
        kinds = prop_types(registry)
        if field in kinds:
            if dialect == "duckdb":
                return f'"{PROPS_PREFIX}{field}"'
            return prop_sql(field, kinds[field])
    raise UnknownField(f"{field!r} is neither a column of {measure.table} nor a registry prop")


def _filters(measure: Measure, dialect: Dialect, registry: Registry) -> list[str]:
    out = []
    if measure.events:
        out.append(f"name IN ({', '.join(literal(e) for e in measure.events)})")
    if measure.category:
        out.append(f"category = {literal(measure.category)}")
    for negate, filters in ((False, measure.where), (True, measure.where_not)):
        for field, values in filters.items():
            expr = field_sql(measure, field, dialect, registry)
            listed = ", ".join(literal(v) for v in values)
            out.append(
                f"({expr} IS NULL OR {expr} NOT IN ({listed}))"
                if negate
                else f"{expr} IN ({listed})"
            )
    return out


def rows_sql(
    measure: Measure,
    dialect: Dialect,
    registry: Registry,
    grid: AnyGrid | Span,
    value: str | None,
    value_type: str | None = "FLOAT8",
    group: str | None = None,
) -> str:
    """The measure's rows in the grid's span: ``ts``, weight ``w``, value ``v``, key ``k`` (and
    with ``group``, that field as ``g``).

    ``v`` is the field ``value`` (cast to ``value_type``, or in its own type for None) when
    given, else the summed fields.
    """
    ts = EVENT_TABLES[measure.table]
    weight = "1.0" if measure.unweighted else "1.0 / sample_rate"
    if value is not None:
        v = field_sql(measure, value, dialect, registry)
        if value_type is not None:
            v = f"CAST({v} AS {value_type})"
    elif measure.agg == "sum":
        v = " + ".join(
            f"COALESCE(CAST({field_sql(measure, f, dialect, registry)} AS FLOAT8), 0)"
            for f in measure.fields
        )
    else:
        v = "NULL"
    k = (
        f"CAST({field_sql(measure, measure.fields[0], dialect, registry)} AS TEXT)"
        if measure.agg == "count_distinct"
        else "NULL"
    )
    where = [
        f"{ts} >= {grid.rows_from_sql}",
        f"{ts} < {grid.rows_to_sql}",
        not_canary_sql(),  # canary traffic is never a product metric's
        *_filters(measure, dialect, registry),
    ]
    g = f", CAST({field_sql(measure, group, dialect, registry)} AS TEXT) AS g" if group else ""
    return (
        f"SELECT {ts} AS ts, {weight} AS w, {v} AS v, {k} AS k{g} "
        f"FROM {measure.table} WHERE {' AND '.join(where)}"
    )


def _bucket_sql(grid: AnyGrid) -> str:
    """A row's grain bucket: the first evaluation index whose window holds it."""
    return f"CAST(floor(extract(epoch FROM r.ts) / {grid.grain_s}) AS BIGINT) + 1"


def _single_time(grid: AnyGrid) -> bool:
    """Whether the grid is one evaluation time: its rows are exactly that time's window."""
    return isinstance(grid, Grid) and grid.first == grid.last


def expanded_sql(rows: str, grid: AnyGrid) -> str:
    """Each row once per evaluation index whose window holds it (column ``i``).

    One evaluation time (a scheduled run's usual case) needs no expansion, and a one-grain window
    only its bucket: the rows are read once, as a bare query over the window would.
    """
    if _single_time(grid):
        return f"SELECT {grid.first} AS i, r.w, r.v, r.k FROM ({rows}) r"
    if grid.grains == 1:
        return (
            f"SELECT b.i, b.w, b.v, b.k FROM (SELECT {_bucket_sql(grid)} AS i, r.w, r.v, r.k "
            f"FROM ({rows}) r) b WHERE b.i BETWEEN {grid.first} AND {grid.last}"
        )
    return (
        "SELECT b.b + o.off AS i, b.w, b.v, b.k FROM ("
        f"SELECT {_bucket_sql(grid)} AS b, r.w, r.v, r.k FROM ({rows}) r) b "
        f"CROSS JOIN generate_series(0, {grid.grains - 1}) AS o(off) "
        f"WHERE b.b + o.off BETWEEN {grid.first} AND {grid.last}"
    )


def _total(measure: Measure) -> str:
    """The weighted total of a count or sum measure over rows ``w``, ``v``."""
    return "sum(w * v)" if measure.agg == "sum" else "sum(w)"


def aggregate_sql(measure: Measure, dialect: Dialect, registry: Registry, grid: AnyGrid) -> str:
    """Per evaluation index: the measure's value ``val`` and its observations ``n``.

    A count or a sum over many evaluation times is totalled per grain bucket first, and the
    buckets (not the rows) are spread over the windows that hold them.
    """
    rows = rows_sql(measure, dialect, registry, grid, None)
    if measure.agg == "count_distinct":
        x = expanded_sql(rows, grid)
        return (
            "SELECT i, sum(w) AS val, count(*) AS n FROM ("
            f"SELECT i, k, max(w) AS w FROM ({x}) x WHERE k IS NOT NULL GROUP BY i, k) d "
            "GROUP BY i"
        )
    total = _total(measure)
    if _single_time(grid):
        return f"SELECT {grid.first} AS i, {total} AS val, count(*) AS n FROM ({rows}) r"
    buckets = (
        f"SELECT {_bucket_sql(grid)} AS b, {total} AS val, count(*) AS n FROM ({rows}) r GROUP BY 1"
    )
    return (
        "SELECT b.b + o.off AS i, sum(b.val) AS val, sum(b.n) AS n FROM "
        f"({buckets}) b CROSS JOIN generate_series(0, {grid.grains - 1}) AS o(off) "
        f"WHERE b.b + o.off BETWEEN {grid.first} AND {grid.last} GROUP BY 1"
    )


def quantile_sql(
    measure: Measure, quantile: float, dialect: Dialect, registry: Registry, grid: AnyGrid
) -> str:
    """Per evaluation index: the weighted ``quantile`` of the measure's field, and ``n``.

    The weighted quantile is the smallest value whose cumulative weight reaches ``quantile`` of
    the total: each row stands for 1 / sample_rate events.
    """
    assert measure.field is not None
    x = expanded_sql(rows_sql(measure, dialect, registry, grid, measure.field), grid)
    return (
        f"SELECT i, min(v) FILTER (WHERE cw >= {quantile!r} * tw) AS val, count(*) AS n FROM ("
        "SELECT i, v, sum(w) OVER (PARTITION BY i ORDER BY v "
        "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS cw, "
        f"sum(w) OVER (PARTITION BY i) AS tw FROM ({x}) x WHERE v IS NOT NULL) c GROUP BY i"
    )


def categories_sql(measure: Measure, dialect: Dialect, registry: Registry, grid: AnyGrid) -> str:
    """Per grain bucket (a one-grain grid): weighted count ``val`` and ``n`` of each category.

    Grouped on the field's own type, and only the groups made text.
    """
    assert measure.field is not None
    one = replace(grid, grains=1)
    rows = rows_sql(measure, dialect, registry, one, measure.field, value_type=None)
    return (
        f"SELECT i, CAST(v AS TEXT) AS category, val, n FROM (SELECT i, v, sum(w) AS val, "
        f"count(*) AS n FROM ({expanded_sql(rows, one)}) x GROUP BY i, v) c WHERE v IS NOT NULL"
    )


def span_categories_sql(
    measure: Measure, dialect: Dialect, registry: Registry, span: Span, index: int
) -> str:
    """Weighted count ``val`` and ``n`` of each category over ``span``, as bucket ``index``.

    What ``categories_sql`` gives per grain bucket, already summed over a whole window: a
    scheduled run reads its window and a week of baseline without grouping them by the hour.
    """
    assert measure.field is not None
    rows = rows_sql(measure, dialect, registry, span, measure.field, value_type=None)
    return (
        f"SELECT {index} AS i, CAST(v AS TEXT) AS category, val, n FROM ("
        f"SELECT v, sum(w) AS val, count(*) AS n FROM ({rows}) r GROUP BY v) c WHERE v IS NOT NULL"
    )


def view_sql(metric: Metric, registry: Registry, days: int = HOT_RETENTION_DAYS) -> str:
    """PostgreSQL: the metric at every evaluation time of the last ``days``: ``time``, ``value``
    and ``n`` (a distribution: ``time``, ``category``, ``share`` and ``n``)."""
    grid = RelativeGrid(
        int(metric.grain_td.total_seconds()), int(metric.window_td / metric.grain_td), days
    )
    g = grid.grain_s
    if metric.kind == "ratio" and metric.numerator and metric.denominator:
        num = aggregate_sql(metric.numerator, "postgres", registry, grid)
        den = aggregate_sql(metric.denominator, "postgres", registry, grid)
        share = "COALESCE(nu.val, 0) / de.val"
        value = f"1 - {share}" if metric.complement else share
        return (
            f"SELECT to_timestamp(de.i * {g}) AS time, {metric.scale!r} * ({value}) AS value, "
            f"de.n AS n FROM ({den}) de LEFT JOIN ({num}) nu ON nu.i = de.i WHERE de.val > 0"
        )
    if metric.kind == "total" and metric.measure:
        # Over every group: a grouped metric's panel shows the whole (its alerts are per group).
        t = aggregate_sql(metric.measure, "postgres", registry, grid)
        return f"SELECT to_timestamp(i * {g}) AS time, val AS value, n FROM ({t}) t"
    if metric.kind == "quantile" and metric.measure and metric.quantile:
        q = quantile_sql(metric.measure, metric.quantile, "postgres", registry, grid)
        return f"SELECT to_timestamp(i * {g}) AS time, val AS value, n FROM ({q}) q"
    if metric.kind == "distribution" and metric.measure and metric.measure.field:
        rows = rows_sql(metric.measure, "postgres", registry, grid, metric.measure.field, "TEXT")
        x = expanded_sql(rows, grid)
        return (
            f"SELECT to_timestamp(i * {g}) AS time, v AS category, "
            "sum(w) / sum(sum(w)) OVER (PARTITION BY i) AS share, "
            "sum(count(*)) OVER (PARTITION BY i) AS n "
            f"FROM ({x}) x WHERE v IS NOT NULL GROUP BY i, v"
        )
    raise ValueError(f"{metric.name}: a {metric.kind} has no view")


def breakdown_sql(
    measure: Measure, dialect: Dialect, registry: Registry, span: Span, by: str
) -> str:
    """Per value ``g`` of the field ``by`` over ``span``: the measure's ``val`` and ``n``."""
    rows = rows_sql(measure, dialect, registry, span, None, group=by)
    if measure.agg == "count_distinct":
        return (
            "SELECT g, sum(w) AS val, count(*) AS n FROM ("
            f"SELECT g, k, max(w) AS w FROM ({rows}) r WHERE k IS NOT NULL AND g IS NOT NULL "
            "GROUP BY g, k) d GROUP BY g"
        )
    total = _total(measure)
    return f"SELECT g, {total} AS val, count(*) AS n FROM ({rows}) r WHERE g IS NOT NULL GROUP BY g"


def breakdown_quantile_sql(
    measure: Measure, quantile: float, dialect: Dialect, registry: Registry, span: Span, by: str
) -> str:
    """Per value ``g`` of the field ``by`` over ``span``: the weighted quantile and ``n``."""
    assert measure.field is not None
    rows = rows_sql(measure, dialect, registry, span, measure.field, group=by)
    return (
        f"SELECT g, min(v) FILTER (WHERE cw >= {quantile!r} * tw) AS val, count(*) AS n FROM ("
        "SELECT g, v, sum(w) OVER (PARTITION BY g ORDER BY v "
        "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS cw, "
        f"sum(w) OVER (PARTITION BY g) AS tw FROM ({rows}) r "
        "WHERE v IS NOT NULL AND g IS NOT NULL) c GROUP BY g"
    )


def breakdown_categories_sql(
    measure: Measure, dialect: Dialect, registry: Registry, span: Span, by: str
) -> str:
    """Per value ``g`` of the field ``by`` and category ``v`` over ``span``: weight and ``n``."""
    assert measure.field is not None
    rows = rows_sql(measure, dialect, registry, span, measure.field, "TEXT", group=by)
    return (
        f"SELECT g, v, sum(w) AS val, count(*) AS n FROM ({rows}) r "
        "WHERE v IS NOT NULL AND g IS NOT NULL GROUP BY g, v"
    )


def total_sql(measure: Measure, dialect: Dialect, registry: Registry, span: Span) -> str:
    """The measure's ``val`` and ``n`` over the whole ``span`` (a breakdown's common total)."""
    rows = rows_sql(measure, dialect, registry, span, None)
    total = _total(measure)
    return f"SELECT {total} AS val, count(*) AS n FROM ({rows}) r"


def grouped_buckets_sql(
    measure: Measure, dialect: Dialect, registry: Registry, span: Span, grain_s: int, by: str
) -> str:
    """Per value ``g`` of the field ``by`` and grain bucket ``b`` (the first evaluation index
    whose window holds it) over ``span``: the measure's ``val`` and ``n`` (count or sum)."""
    rows = rows_sql(measure, dialect, registry, span, None, group=by)
    return (
        f"SELECT g, CAST(floor(extract(epoch FROM r.ts) / {grain_s}) AS BIGINT) + 1 AS b, "
        f"{_total(measure)} AS val, count(*) AS n FROM ({rows}) r WHERE g IS NOT NULL "
        "GROUP BY 1, 2"
    )
