"""The canary: replay recent warm-tier events into a deployment, and compare what lands.

Run by ``telemetry canary --target URL`` and weekly by the anomaly function (``{"action":
"canary"}``, Cloud Scheduler). It takes the newest events of this
deployment's warm tier, re-keys them (new event ids, derived from the run and the old id, so a
rerun of the same run sends the same ids), tags them as canary traffic
(``app_version`` = ``canary``, one session ``canary-<run>``), moves their times so the newest is
a minute old (relative times kept), and sends them to the target's ingest as beacons. It then
waits until the target's hot tier holds them, and compares per event name the counts, and per
catalog metric the value over the canary session with the value over the source events.

The canary session id is chosen so that session-hash sampling keeps it at any rate of 1 % or
more, so the target stores every canary event even where it samples a category. Product
metrics never see canary traffic (``shared/contract/canary.py``).
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from shared.contract.canary import CANARY_APP_VERSION, not_canary_sql
from shared.contract.registry.keywords import SERVER_ONLY_CATEGORIES
from shared.contract.registry.loader import Registry
from shared.errors import TerminalError, retry_after_seconds
from shared.metrics import sql
from shared.metrics.catalog import Catalog, Metric
from shared.metrics.drift import divergence
from shared.metrics.evaluate import DuckDbRunner, Evaluator
from shared.policy.sampling import session_fraction
from shared.settings import Secret
from shared.storage.hot.tables import LLM_CALL_EVENT, api_calls_log
from shared.storage.warm.columns import PROPS_PREFIX, prop_types

#: Re-keyed ids: uuid5 of the run and the old id under this namespace.
CANARY_NAMESPACE = uuid.UUID("6f0f9a52-7c3e-4a53-9d1b-2f0c3f1a9e11")
#: The canary session is kept by session-hash sampling at any rate at least this.
MIN_KEPT_RATE = 0.01
#: How close a metric's canary value must be to the source's (relative), and a distribution's
#: divergence from the source's.
TOLERANCE = 1e-6
BATCH = 50
#: What a run id may be: it becomes part of the session id (and of SQL literals).
RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,40}")
#: ``app_version`` the comparison's views give every row, so one group holds them all.
_ALL = "canary-compare"
_LLM_PROPS = [c.name for c in api_calls_log.columns]


class CanaryFailed(TerminalError):
    """The canary could not run (no source events, the target refused or never stored them)."""


@dataclass
class Difference:
    """One disagreement between the source and what the target stored."""

    what: str
    source: Any
    canary: Any

    def __str__(self) -> str:
        return f"{self.what}: source {self.source}, canary {self.canary}"


@dataclass
class CanaryReport:
    """What a canary run sent, what landed, and every difference."""

    run_id: str
    session_id: str
    sent: int = 0
    accepted: int = 0
    landed: int = 0
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)
    metrics: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    differences: list[Difference] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The anomaly function's answer (counts and values only: no ids, no props)."""
        return {
            "run_id": self.run_id,
            "sent": self.sent,
            "accepted": self.accepted,
            "landed": self.landed,
            "counts": {k: {"source": a, "canary": b} for k, (a, b) in self.counts.items()},
            "metrics": {k: {"source": a, "canary": b} for k, (a, b) in self.metrics.items()},
            "differences": [str(d) for d in self.differences],
        }


def canary_session(run_id: str) -> str:
    """The run's session id: ``canary-<run>[-<n>]``, the first kept at any rate >= 1 %."""
    if not RUN_ID.fullmatch(run_id):
        raise CanaryFailed(
            f"run id {run_id[:80]!r}: use 1 to 40 letters, digits, '-' or '_' "
            "(it names the canary session and its event ids)"
        )
    for attempt in range(100_000):
        session = f"canary-{run_id}" + (f"-{attempt}" if attempt else "")
        if session_fraction(session) < MIN_KEPT_RATE:
            return session
    raise CanaryFailed("no canary session id is kept by sampling")  # pragma: no cover


def latest_version(registry: Registry, name: str) -> int:
    """The newest version of an event."""
    return max(spec.version for spec in registry if spec.name == name)


# -- the source ----------------------------------------------------------------------------
def source_rows(con: Any, count: int) -> list[dict[str, Any]]:
    """The newest ``count`` events of the warm views (both tables), canary and server-only
    traffic left out, as dicts with a ``table`` key, oldest first."""
    server_only = ", ".join(f"'{c}'" for c in sorted(SERVER_ONLY_CATEGORIES))
    rows: list[dict[str, Any]] = []
    for table, ts, extra in (
        ("telemetry_events", "event_ts", f"AND category NOT IN ({server_only})"),
        ("api_calls_log", "ts", ""),
    ):
        # Times come back as epoch microseconds: DuckDB hands out aware datetimes only with pytz.
        relation = con.sql(
            f"SELECT * EXCLUDE ({ts}, received_at), epoch_us({ts}) AS at_us "  # noqa: S608
            f"FROM {table} WHERE {not_canary_sql()} {extra} "
            f"ORDER BY {ts} DESC LIMIT {int(count)}"
        )
        names = relation.columns
        for values in relation.fetchall():
            row = dict(zip(names, values, strict=True))
            row["table"] = table
            row["at"] = datetime.fromtimestamp(row.pop("at_us") / 1e6, UTC)
            rows.append(row)
    rows.sort(key=lambda r: r["at"], reverse=True)
    return sorted(rows[:count], key=lambda r: r["at"])


def _props(row: dict[str, Any], registry: Registry, kinds: dict[str, str]) -> dict[str, Any]:
    """A row's props as the wire format sends them."""
    if row["table"] == "api_calls_log":
        spec = registry.get(LLM_CALL_EVENT, latest_version(registry, LLM_CALL_EVENT))
        declared = spec.props_schema.get("properties", {})
        out = {k: row[k] for k in _LLM_PROPS if k in declared and row.get(k) is not None}
        if "cost_usd" in out:
            out["cost_usd"] = float(out["cost_usd"])
        return out
    spec = registry.get(str(row["name"]), int(row["version"]))
    props: dict[str, Any] = {}
    for name, schema in (spec.props_schema.get("properties") or {}).items():
        value = row.get(f"{PROPS_PREFIX}{name}")
        if value is None:
            continue
        if kinds.get(name) == "json" and isinstance(value, str):
            value = json.loads(value)
        if (
            isinstance(schema, dict)
            and schema.get("type") == "integer"
            and isinstance(value, float)
        ):
            value = int(value)
        props[name] = value
    return props


def wire_events(
    rows: list[dict[str, Any]], registry: Registry, run_id: str, session: str, now: datetime
) -> list[dict[str, Any]]:
    """The source rows as canary events: new ids, the canary session, times moved to now."""
    kinds = prop_types(registry)
    shift = (now - timedelta(minutes=1)) - max(r["at"] for r in rows)
    out = []
    for row in rows:
        is_call = row["table"] == "api_calls_log"
        old_id = str(row["call_id" if is_call else "event_id"])
        event: dict[str, Any] = {
            "event_id": str(uuid.uuid5(CANARY_NAMESPACE, f"{run_id}:{old_id}")),
            "name": LLM_CALL_EVENT if is_call else row["name"],
            "version": latest_version(registry, LLM_CALL_EVENT) if is_call else row["version"],
            "ts": (row["at"] + shift).astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "session_id": session,
            "props": _props(row, registry, kinds),
        }
        if row.get("conversation_id"):
            event["conversation_id"] = f"canary-{run_id}-{row['conversation_id']}"[:128]
        if row.get("user_key"):
            event["user_id"] = f"canary-{str(row['user_key'])[:24]}"
        out.append(event)
    return out


# -- sending and waiting -------------------------------------------------------------------
def send(url: str, events: list[dict[str, Any]], session: str, timeout_s: float) -> int:
    """POST the events as beacons (again on 5xx or no answer); the number accepted."""
    accepted = 0
    deadline = time.monotonic() + timeout_s
    for start in range(0, len(events), BATCH):
        body = json.dumps(
            {
                "context": {"session_id": session, "app_version": CANARY_APP_VERSION},
                "events": events[start : start + BATCH],
            }
        ).encode()
        while True:
            request = urllib.request.Request(  # noqa: S310 - the operator's target
                url, data=body, headers={"Content-Type": "application/json"}
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
                    accepted += int(json.loads(answer.read())["accepted"])
                    break
            except urllib.error.HTTPError as error:
                retryable = error.code >= 500 or error.code == 429
                if not retryable or time.monotonic() > deadline:
                    detail = error.read()[:300].decode("utf-8", "replace")
                    raise CanaryFailed(
                        f"the target's ingest answered {error.code}: {detail}"
                    ) from None
                # A rate limit says when to come back: the canary is one session, paced as any.
                wait = retry_after_seconds(error.headers.get("Retry-After"))
                wait = 2.0 if wait is None else wait
                time.sleep(min(wait, max(0.0, deadline - time.monotonic())))
                continue
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise CanaryFailed(f"the target's ingest does not answer ({exc})") from None
            time.sleep(2.0)
    return accepted


# -- comparing -----------------------------------------------------------------------------
def relabel(con: Any, where: dict[str, str]) -> None:
    """Make the connection's views hold only the rows ``where`` selects per table, every one
    with one ``app_version`` (a metric over the views is then one group: the whole set)."""
    for table, condition in where.items():
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE canary_{table} AS SELECT * REPLACE "  # noqa: S608
            f"('{_ALL}' AS app_version) FROM {table} WHERE {condition}"
        )
        con.execute(f"CREATE OR REPLACE TEMP VIEW {table} AS SELECT * FROM canary_{table}")  # noqa: S608


def metric_value(
    evaluator: Evaluator, metric: Metric, start: datetime, end: datetime
) -> float | dict[str, float] | None:
    """A metric over every row of the views in ``[start, end)``: a ratio's or a quantile's
    value, or a distribution's shares per category."""
    span = sql.Span(int(start.timestamp()), int(end.timestamp()) + 1)
    run, registry, dialect = evaluator.runner.rows, evaluator.registry, evaluator.runner.dialect
    if metric.kind == "ratio" and metric.numerator and metric.denominator:
        num = run(sql.total_sql(metric.numerator, dialect, registry, span))[0][0]
        den = run(sql.total_sql(metric.denominator, dialect, registry, span))[0][0]
        if not den:
            return None
        share = float(num or 0) / float(den)
        return metric.scale * ((1 - share) if metric.complement else share)
    if metric.kind == "quantile" and metric.measure and metric.quantile:
        query = sql.breakdown_quantile_sql(
            metric.measure, metric.quantile, dialect, registry, span, "app_version"
        )
        values = [v for _, v, _ in run(query)]
        return float(values[0]) if values and values[0] is not None else None
    if metric.kind == "distribution" and metric.measure:
        query = sql.breakdown_categories_sql(metric.measure, dialect, registry, span, "app_version")
        weights = {str(v): float(w) for _, v, w, _ in run(query)}
        total = sum(weights.values())
        return {k: w / total for k, w in sorted(weights.items())} if total else None
    return None


def comparable(catalog: Catalog, registry: Registry) -> list[Metric]:
    """The catalog's metrics computed from client events (not probes, not the pipeline's)."""
    server_only = {s.name for s in registry if s.category in SERVER_ONLY_CATEGORIES}
    out = []
    for metric in catalog:
        measures = metric.measures
        if metric.probe or not measures:
            continue
        if any(
            m.category in SERVER_ONLY_CATEGORIES or set(m.events) & server_only for m in measures
        ):
            continue
        out.append(metric)
    return out


def differs(source: Any, canary: Any) -> bool:
    """Whether two metric values disagree beyond :data:`TOLERANCE`."""
    if source is None or canary is None:
        return (source is None) != (canary is None)
    if isinstance(source, dict) and isinstance(canary, dict):
        return divergence("jensen_shannon", source, canary) > TOLERANCE
    return abs(float(source) - float(canary)) > TOLERANCE * max(1.0, abs(float(source)))


def count_by_name(con: Any) -> Counter[str]:
    """Events per name in the connection's (relabelled) views."""
    counts: Counter[str] = Counter()
    for name, n in con.sql("SELECT name, count(*) FROM telemetry_events GROUP BY 1").fetchall():
        counts[str(name)] += int(n)
    counts[LLM_CALL_EVENT] += int(con.sql("SELECT count(*) FROM api_calls_log").fetchone()[0])
    if not counts[LLM_CALL_EVENT]:
        del counts[LLM_CALL_EVENT]
    return counts


# -- the run -------------------------------------------------------------------------------
def _ids_sql(column: str, ids: list[str]) -> str:
    quoted = ", ".join(f"'{i}'" for i in ids) or "NULL"
    return f"lower(CAST({column} AS VARCHAR)) IN ({quoted})"


def _landed(engine: Any, session: str) -> int:
    from sqlalchemy import text

    with engine.connect() as conn:
        return sum(
            int(
                conn.execute(
                    text(f"SELECT count(*) FROM {table} WHERE session_id = :s"),  # noqa: S608
                    {"s": session},
                ).scalar()
                or 0
            )
            for table in ("telemetry_events", "api_calls_log")
        )


def run_canary(
    settings: Any,
    target: str,
    target_database_url: str | None = None,
    count: int = 1000,
    run_id: str | None = None,
    timeout_s: float = 600.0,
    progress: Callable[[str], object] = lambda _line: None,
    engine: Any = None,
) -> CanaryReport:
    """Replay, wait, compare (see the module's doc); the report holds every difference."""
    from shared.contract.registry.loader import default_registry
    from shared.metrics.catalog import default_catalog
    from shared.storage.hot.engine import get_engine, make_engine
    from shared.storage.warm.query import open_views

    registry = default_registry()
    now = datetime.now(UTC)
    run_id = run_id or now.strftime("%Y%m%dT%H%M%S")
    session = canary_session(run_id)
    report = CanaryReport(run_id, session)
    engine = engine or get_engine()
    disposals: list[Any] = []
    source = open_views(settings, engine, registry, tier="warm")
    try:
        rows = source_rows(source, count)
        if not rows:
            raise CanaryFailed("the warm tier holds no events to replay: run a snapshot first")
        events = wire_events(rows, registry, run_id, session, now)
        report.sent = len(events)
        progress(f"canary {run_id}: sending {len(events)} warm-tier events")
        report.accepted = send(target, events, session, timeout_s)
        target_settings = settings
        target_engine = engine
        if target_database_url:
            # The target is reached by its URL alone, never by this deployment's Cloud SQL.
            target_settings = msgspec.structs.replace(
                settings,
                database_url=Secret(target_database_url),
                telemetry_cloudsql_instance=None,
            )
            target_engine = make_engine(target_database_url, pool_size=1, max_overflow=0)
            disposals.append(target_engine)
        deadline = time.monotonic() + timeout_s
        while (landed := _landed(target_engine, session)) < report.accepted:
            if time.monotonic() > deadline:
                break
            progress(f"waiting: {landed} of {report.accepted} stored by the target")
            time.sleep(2.0)
        report.landed = landed
        if landed < report.sent:
            report.differences.append(Difference("events stored", report.sent, landed))
        ids = {
            t: [
                str(r["call_id" if t == "api_calls_log" else "event_id"]).lower()
                for r in rows
                if r["table"] == t
            ]
            for t in ("telemetry_events", "api_calls_log")
        }
        relabel(
            source,
            {
                "telemetry_events": _ids_sql("event_id", ids["telemetry_events"]),
                "api_calls_log": _ids_sql("call_id", ids["api_calls_log"]),
            },
        )
        canary = open_views(target_settings, target_engine, registry, tier="hot")
        try:
            relabel(
                canary,
                {t: f"session_id = '{session}'" for t in ("telemetry_events", "api_calls_log")},
            )
            _compare(report, source, canary, rows, registry, default_catalog())
        finally:
            canary.close()
    finally:
        source.close()
        for own in disposals:
            own.dispose()
    return report


def _compare(
    report: CanaryReport,
    source: Any,
    canary: Any,
    rows: list[dict[str, Any]],
    registry: Registry,
    catalog: Catalog,
) -> None:
    want, got = count_by_name(source), count_by_name(canary)
    for name in sorted(set(want) | set(got)):
        report.counts[name] = (want[name], got[name])
        if want[name] != got[name]:
            report.differences.append(Difference(f"count of {name}", want[name], got[name]))
    start, end = rows[0]["at"], rows[-1]["at"]
    first_us, last_us = canary.sql(
        "SELECT min(t), max(t) FROM (SELECT epoch_us(event_ts) AS t FROM telemetry_events "
        "UNION ALL SELECT epoch_us(ts) FROM api_calls_log)"
    ).fetchone()
    source_eval = Evaluator(DuckDbRunner(source), registry)
    canary_eval = Evaluator(DuckDbRunner(canary), registry)
    for metric in comparable(catalog, registry):
        before = metric_value(source_eval, metric, start, end)
        after = (
            None  # nothing landed
            if first_us is None
            else metric_value(
                canary_eval,
                metric,
                datetime.fromtimestamp(first_us / 1e6, UTC),
                datetime.fromtimestamp(last_us / 1e6, UTC),
            )
        )
        report.metrics[metric.name] = (before, after)
        if differs(before, after):
            report.differences.append(Difference(f"metric {metric.name}", before, after))
