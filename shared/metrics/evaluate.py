"""A metric's value at each evaluation time: one query per measure, however many times there are.

The same code serves the live run (the newest evaluation times), the backtest (every time of a
history) and the report (a chart's points), so what the backtest says an alert would have done
is what the live run does on the same rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from sqlalchemy import Engine

from shared.contract.registry.loader import Registry
from shared.metrics import sql
from shared.metrics.catalog import Measure, Metric, parse_duration
from shared.metrics.drift import divergence

Status = Literal["ok", "insufficient", "no_data", "error"]


@dataclass(frozen=True)
class Observation:
    """A metric at one evaluation time: its value, its observations ``n``, and whether it counts.

    ``insufficient`` has fewer observations than the metric's minimum sample: its value is shown
    but never judged. ``no_data`` has none; ``error`` could not be evaluated.
    """

    at: datetime
    status: Status
    value: float | None
    n: int
    error: str | None = None
    #: Category shares, for a distribution.
    shares: Mapping[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The observation as JSON (the API, the CLI and the alert bodies)."""
        out: dict[str, Any] = {
            "at": self.at.isoformat(),
            "status": self.status,
            "value": self.value,
            "n": self.n,
        }
        if self.error:
            out["error"] = self.error
        return out


class SqlRunner(Protocol):
    """Runs one query of the metrics' SQL and returns its rows."""

    dialect: sql.Dialect

    def rows(self, query: str) -> list[tuple[Any, ...]]:
        """The rows of ``query``."""
        ...


class PostgresRunner:
    """The hot tier, on PostgreSQL."""

    dialect: sql.Dialect = "postgres"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def rows(self, query: str) -> list[tuple[Any, ...]]:
        """The rows of ``query`` (our own SQL: no parameters, no ``%``)."""
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.exec_driver_sql(query).all()]


class DuckDbRunner:
    """The tiers' DuckDB views (``shared.storage.warm.query.open_views``)."""

    dialect: sql.Dialect = "duckdb"

    def __init__(self, con: Any) -> None:
        self.con = con

    def rows(self, query: str) -> list[tuple[Any, ...]]:
        """The rows of ``query``."""
        return [tuple(r) for r in self.con.execute(query).fetchall()]


#: A gauge's probe: the value now (None: no data).
Probe = Callable[[], float | None]


def grid_for(metric: Metric, start: datetime, end: datetime) -> sql.Grid:
    """The metric's evaluation times from ``start`` to ``end`` (both on its grain, inclusive)."""
    grain = int(metric.grain_td.total_seconds())
    first = math.ceil(start.timestamp() / grain)
    last = math.floor(end.timestamp() / grain)
    return sql.Grid(grain, int(metric.window_td / metric.grain_td), first, max(first, last))


def latest_time(metric: Metric, now: datetime) -> datetime:
    """The newest evaluation time at or before ``now``."""
    grain = int(metric.grain_td.total_seconds())
    return datetime.fromtimestamp(math.floor(now.timestamp() / grain) * grain, UTC)


def _times(grid: sql.Grid) -> list[tuple[int, datetime]]:
    return [
        (i, datetime.fromtimestamp(i * grid.grain_s, UTC)) for i in range(grid.first, grid.last + 1)
    ]


def _per_index(rows: list[tuple[Any, ...]]) -> dict[int, tuple[float | None, int]]:
    return {int(i): (None if v is None else float(v), int(n)) for i, v, n in rows}


class Evaluator:
    """Evaluates catalog metrics with one runner."""

    def __init__(self, runner: SqlRunner, registry: Registry) -> None:
        self.runner = runner
        self.registry = registry

    def measure(self, measure: Measure, grid: sql.Grid) -> dict[int, tuple[float | None, int]]:
        """The measure's value and observations per evaluation index of ``grid``."""
        query = sql.aggregate_sql(measure, self.runner.dialect, self.registry, grid)
        return _per_index(self.runner.rows(query))

    def evaluate(
        self, metric: Metric, grid: sql.Grid, probe: Probe | None = None
    ) -> list[Observation]:
        """The metric at every evaluation time of ``grid``."""
        if metric.kind == "ratio":
            return self._ratio(metric, grid)
        if metric.kind == "quantile":
            assert metric.measure and metric.quantile
            query = sql.quantile_sql(
                metric.measure, metric.quantile, self.runner.dialect, self.registry, grid
            )
            values = _per_index(self.runner.rows(query))
            return [_judged(metric, at, *values.get(i, (None, 0))) for i, at in _times(grid)]
        if metric.kind == "distribution":
            return self._distribution(metric, grid)
        if metric.kind == "total":  # over every group (a grouped metric alerts per group)
            assert metric.measure
            totals = self.measure(metric.measure, grid)
            return [_judged(metric, at, *(totals.get(i) or (0.0, 0))) for i, at in _times(grid)]
        if probe is None:
            raise ValueError(f"gauge {metric.name} has no probe here")
        value = probe()
        at = _times(grid)[-1][1]
        return [_judged(metric, at, value, 0 if value is None else metric.min_sample)]

    def _ratio(self, metric: Metric, grid: sql.Grid) -> list[Observation]:
        assert metric.numerator and metric.denominator
        numerator = self.measure(metric.numerator, grid)
        denominator = self.measure(metric.denominator, grid)
        out = []
        for i, at in _times(grid):
            num = numerator.get(i, (0.0, 0))[0] or 0.0
            den, n = denominator.get(i, (None, 0))
            if not den:
                out.append(Observation(at, "no_data", None, n))
                continue
            share = num / den
            value = metric.scale * ((1 - share) if metric.complement else share)
            out.append(_judged(metric, at, value, n))
        return out

    def _distribution(self, metric: Metric, grid: sql.Grid) -> list[Observation]:
        assert metric.measure and metric.drift
        baseline_grains = int(parse_duration(metric.drift.baseline) / metric.grain_td)
        dialect, g = self.runner.dialect, grid.grain_s
        if grid.first == grid.last:
            # One time: its window and its baseline, each summed whole, as two buckets.
            last, first = grid.last, grid.last - grid.grains
            stretches = (
                (sql.Span(first * g, last * g), last),
                (sql.Span((first - baseline_grains) * g, first * g), first),
            )
            queries = [
                sql.span_categories_sql(metric.measure, dialect, self.registry, span, index)
                for span, index in stretches
            ]
        else:
            reach = sql.Grid(g, 1, grid.first - grid.grains - baseline_grains + 1, grid.last)
            queries = [sql.categories_sql(metric.measure, dialect, self.registry, reach)]
        buckets: dict[int, dict[str, tuple[float, int]]] = {}
        for i, category, weight, n in (row for q in queries for row in self.runner.rows(q)):
            buckets.setdefault(int(i), {})[str(category)] = (float(weight), int(n))

        def window(last: int, grains: int) -> tuple[dict[str, float], int]:
            counts: dict[str, float] = {}
            seen = 0
            for b in range(last - grains + 1, last + 1):
                for category, (weight, n) in buckets.get(b, {}).items():
                    counts[category] = counts.get(category, 0.0) + weight
                    seen += n
            return counts, seen

        out = []
        for i, at in _times(grid):
            current, n = window(i, grid.grains)
            baseline, base_n = window(i - grid.grains, baseline_grains)
            if n == 0:
                out.append(Observation(at, "no_data", None, 0))
                continue
            total = sum(current.values())
            shares = {k: v / total for k, v in sorted(current.items())}
            if base_n < metric.drift.min_sample or not baseline:
                out.append(Observation(at, "insufficient", None, n, shares=shares))
                continue
            value = divergence(metric.drift.method, current, baseline)
            judged = _judged(metric, at, value, n)
            out.append(Observation(judged.at, judged.status, judged.value, judged.n, shares=shares))
        return out


#: Per group, per grain bucket: (value, observations).
Buckets = dict[str, dict[int, tuple[float, int]]]


def _window(buckets: dict[int, tuple[float, int]], last: int, grains: int) -> tuple[float, int]:
    """The sum of ``grains`` buckets ending at ``last``."""
    value, n = 0.0, 0
    for b in range(last - grains + 1, last + 1):
        v, c = buckets.get(b, (0.0, 0))
        value += v
        n += c
    return value, n


class GroupedEvaluation:
    """A grouped metric (``group_by``) at every evaluation time of a grid, per group.

    A total's value is the window's sum (a group with no rows has spent nothing: 0, judged);
    a ratio's is its numerator over its denominator (no denominator: not judged). With a
    ``baseline``, the value is divided by the group's own level over the baseline period
    before the window (a total's as an average per window), so 3.0 reads "three times the
    usual"; a group without enough baseline is not judged.
    """

    def __init__(self, evaluator: Evaluator, metric: Metric) -> None:
        assert metric.group_by is not None
        self.evaluator = evaluator
        self.metric = metric
        self.baseline_grains = (
            int(parse_duration(metric.baseline) / metric.grain_td) if metric.baseline else 0
        )

    def _buckets(self, measure: Measure, grid: sql.Grid) -> Buckets:
        metric, runner = self.metric, self.evaluator.runner
        assert metric.group_by is not None
        g = grid.grain_s
        span = sql.Span((grid.first - grid.grains - self.baseline_grains) * g, grid.last * g)
        query = sql.grouped_buckets_sql(
            measure, runner.dialect, self.evaluator.registry, span, g, metric.group_by
        )
        out: Buckets = {}
        for group, bucket, value, n in runner.rows(query):
            out.setdefault(str(group), {})[int(bucket)] = (float(value or 0), int(n))
        return out

    def evaluate(self, grid: sql.Grid, known: Iterable[str] = ()) -> dict[str, list[Observation]]:
        """Each group's observations: every group with rows in reach, and each ``known`` one
        (a group whose alert stands must be judged even when it went quiet)."""
        metric = self.metric
        if metric.kind == "total":
            assert metric.measure is not None
            parts = [self._buckets(metric.measure, grid)]
        else:
            assert metric.numerator is not None and metric.denominator is not None
            parts = [self._buckets(metric.numerator, grid), self._buckets(metric.denominator, grid)]
        groups = sorted({g for part in parts for g in part} | set(known))
        return {
            group: [
                self._observe(i, at, grid, [p.get(group, {}) for p in parts])
                for i, at in _times(grid)
            ]
            for group in groups
        }

    def _observe(
        self, i: int, at: datetime, grid: sql.Grid, parts: list[dict[int, tuple[float, int]]]
    ) -> Observation:
        metric, k, b = self.metric, grid.grains, self.baseline_grains
        if metric.kind == "total":
            value, n = _window(parts[0], i, k)
            base = None
            if b:
                base_value, base_n = _window(parts[0], i - k, b)
                base = base_value * k / b if base_n >= metric.min_sample else None
        else:
            num, _ = _window(parts[0], i, k)
            den, n = _window(parts[1], i, k)
            if not den:
                return Observation(at, "insufficient", None, n)
            value = metric.scale * num / den
            base = None
            if b:
                base_num, _ = _window(parts[0], i - k, b)
                base_den, base_n = _window(parts[1], i - k, b)
                if base_den and base_n >= metric.min_sample:
                    base = metric.scale * base_num / base_den
        if b:
            if not base:
                return Observation(at, "insufficient", None, n)
            value = value / base
        if metric.kind == "total" and n == 0:
            return Observation(at, "ok", value, 0)  # nothing spent is a fact, not a lack of data
        return Observation(at, "ok" if n >= metric.min_sample else "insufficient", value, n)


@dataclass(frozen=True)
class Slice:
    """A metric over one value of a breakdown field (a speaker, say) for a whole period."""

    group: str
    value: float | None
    n: int
    status: Status


def breakdown(
    evaluator: Evaluator, metric: Metric, by: str, start: datetime, end: datetime
) -> list[Slice]:
    """The metric per value of ``by`` from ``start`` to ``end``, most observed first.

    A distribution's value per group is its divergence from the whole period's distribution:
    which speakers' mix differs most.
    """
    if by not in metric.breakdowns:
        raise ValueError(f"{metric.name} cannot be broken down by {by!r}; by {metric.breakdowns}")
    span = sql.Span(int(start.timestamp()), int(end.timestamp()))
    run, registry, dialect = evaluator.runner.rows, evaluator.registry, evaluator.runner.dialect
    values: dict[str, tuple[float | None, int]] = {}
    if metric.kind == "ratio" and metric.numerator and metric.denominator:
        num = {
            str(g): float(v or 0)
            for g, v, _ in run(sql.breakdown_sql(metric.numerator, dialect, registry, span, by))
        }
        if metric.breakdown_over_total:
            whole, whole_n = run(sql.total_sql(metric.denominator, dialect, registry, span))[0]
            denominators = [(g, whole, whole_n) for g in num]
        else:
            denominators = run(sql.breakdown_sql(metric.denominator, dialect, registry, span, by))
        for g, den, n in denominators:
            share = num.get(str(g), 0.0) / float(den) if den else None
            if share is not None:
                share = metric.scale * ((1 - share) if metric.complement else share)
            values[str(g)] = (share, int(n))
    elif metric.kind == "quantile" and metric.measure and metric.quantile:
        query = sql.breakdown_quantile_sql(
            metric.measure, metric.quantile, dialect, registry, span, by
        )
        values = {str(g): (None if v is None else float(v), int(n)) for g, v, n in run(query)}
    elif metric.kind == "distribution" and metric.measure and metric.drift:
        groups: dict[str, dict[str, float]] = {}
        counts: dict[str, int] = {}
        for g, v, w, n in run(
            sql.breakdown_categories_sql(metric.measure, dialect, registry, span, by)
        ):
            groups.setdefault(str(g), {})[str(v)] = float(w)
            counts[str(g)] = counts.get(str(g), 0) + int(n)
        overall: dict[str, float] = {}
        for shares in groups.values():
            for category, weight in shares.items():
                overall[category] = overall.get(category, 0.0) + weight
        values = {
            g: (divergence(metric.drift.method, shares, overall), counts[g])
            for g, shares in groups.items()
        }
    out = []
    for group, (value, n) in values.items():
        judged = _judged(metric, end, value, n)
        out.append(Slice(group, judged.value, n, judged.status))
    return sorted(out, key=lambda s: (-s.n, s.group))


def _judged(metric: Metric, at: datetime, value: float | None, n: int) -> Observation:
    if n == 0 or value is None:
        return Observation(at, "no_data", None, n)
    return Observation(at, "ok" if n >= metric.min_sample else "insufficient", value, n)


def failed(at: datetime, error: BaseException) -> Observation:
    """The observation of a metric that could not be evaluated (the error's type, no values)."""
    return Observation(at, "error", None, 0, error=type(error).__name__)


def span_back(metric: Metric, end: datetime, evaluations: int) -> tuple[datetime, datetime]:
    """The times of the last ``evaluations`` evaluations up to ``end``."""
    last = latest_time(metric, end)
    return last - metric.grain_td * (evaluations - 1), last
