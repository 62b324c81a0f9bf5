"""The anomaly function's evaluation of the whole catalog, beside each metric's bare SQL.

A fresh local stack (PostgreSQL, GCS emulator) gets ``--events`` generated events (1 M by
default) over the last ``--days`` days; everything but the last day is snapshotted into the warm
tier (so the hot tier holds every row and the warm tier all but the newest day).

Measured side by side in one run, each best of ``--repeat``:

* **catalog**: what the anomaly function does every 15 minutes for the whole catalog (its
  newest ``m`` evaluations per metric in one query per measure, the alert state under a row lock,
  the outbox), on a fresh state, plus every metric's newest evaluation over the warm tier
  through DuckDB;
* **bare SQL**: for each metric, the plainest SQL giving its newest value, run alone: one
  aggregate over the window's rows (``percentile_cont`` for a quantile, a ``GROUP BY`` for a
  distribution and its baseline) on PostgreSQL, and the same over the warm files in DuckDB;
  the times summed.

Last line: ``anomaly: catalog <X> s, bare SQL <Y> s, ratio <r>`` with r = bare / catalog (1.0: the
catalog costs no more than its bare queries; above 1: it costs less).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)  # not benchmarks/: its decorator.py would shadow the `decorator` package

from sqlalchemy import text  # noqa: E402

from shared.contract.registry import default_registry  # noqa: E402
from shared.contract.registry.loader import Registry  # noqa: E402
from shared.metrics import sql  # noqa: E402
from shared.metrics.catalog import Catalog, Measure, Metric, default_catalog, parse_duration  # noqa: E402
from shared.metrics.deliver import Deliverer  # noqa: E402
from shared.metrics.evaluate import DuckDbRunner, Evaluator, SqlRunner, grid_for, latest_time  # noqa: E402
from shared.metrics.run import AnomalyRun, runner_factory  # noqa: E402
from shared.metrics.store import AlertStore  # noqa: E402
from shared.settings import get_settings, reset_settings  # noqa: E402
from shared.storage.gcs import get_storage_client, reset_storage_client  # noqa: E402
from shared.storage.hot.engine import make_engine  # noqa: E402
from shared.storage.warm.query import open_views  # noqa: E402
from shared.storage.warm.snapshot import Snapshotter  # noqa: E402
from telemetry_cli.history import fill_history  # noqa: E402
from telemetry_cli.stack.devstack import StackOptions, running_stack  # noqa: E402

#: Events per session, on average, from the generator (for sessions per hour).
EVENTS_PER_SESSION = 22


def bare_measure(measure: Measure, dialect: sql.Dialect, registry: Registry, grid: sql.Grid) -> str:
    rows = sql.rows_sql(measure, dialect, registry, grid, None)
    if measure.agg == "count_distinct":
        return f"SELECT count(DISTINCT k) FROM ({rows}) r"
    return f"SELECT {'sum(w * v)' if measure.agg == 'sum' else 'sum(w)'} FROM ({rows}) r"


def bare_queries(
    metric: Metric, dialect: sql.Dialect, registry: Registry, at: datetime
) -> list[str]:
    """The plainest SQL for the metric's value at ``at`` (one window, no expansion)."""
    grid = grid_for(metric, at, at)
    if metric.kind == "ratio" and metric.numerator and metric.denominator:
        return [
            bare_measure(m, dialect, registry, grid) for m in (metric.numerator, metric.denominator)
        ]
    assert metric.measure and metric.measure.field
    rows = sql.rows_sql(metric.measure, dialect, registry, grid, metric.measure.field)
    if metric.kind == "quantile":
        return [
            f"SELECT percentile_cont({metric.quantile}) WITHIN GROUP (ORDER BY v) FROM ({rows}) r"
        ]
    assert metric.drift
    baseline = sql.Grid(
        grid.grain_s,
        int(parse_duration(metric.drift.baseline) / metric.grain_td),
        grid.first - grid.grains,
        grid.first - grid.grains,
    )
    base_rows = sql.rows_sql(metric.measure, dialect, registry, baseline, metric.measure.field)
    return [f"SELECT v, sum(w) FROM ({r}) r GROUP BY v" for r in (rows, base_rows)]


def timed(action: Any) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    registry = default_registry()
    catalog = Catalog(metrics=tuple(m for m in default_catalog() if m.kind != "gauge"))
    with tempfile.TemporaryDirectory(prefix="bench-anomaly-") as tmp:
        options = StackOptions(state_dir=Path(tmp), with_functions=False, persistent=False)
        with running_stack(options) as stack:
            assert stack.database_url is not None
            reset_settings()
            reset_storage_client()
            settings = get_settings()
            engine = make_engine(stack.database_url)
            bucket = get_storage_client(settings).bucket(settings.telemetry_bucket)
            end = datetime.now(UTC)
            start = end - timedelta(days=args.days)
            per_hour = max(1, args.events // (args.days * 24 * EVENTS_PER_SESSION))
            print(f"generating about {args.events:,} events over {args.days} days …", flush=True)
            cut = end - timedelta(days=1)
            started = time.perf_counter()
            stored = fill_history(engine, settings, start, cut, per_hour, seed=1)
            Snapshotter(settings, engine, bucket, registry).run()
            stored += fill_history(engine, settings, cut, end, per_hour, seed=2)
            with engine.connect() as conn:
                hot = conn.execute(
                    text(
                        "SELECT (SELECT count(*) FROM telemetry_events) + (SELECT count(*) FROM api_calls_log)"
                    )
                ).scalar_one()
                files = conn.execute(text("SELECT count(*), sum(rows) FROM warm_files")).one()
            print(
                f"hot rows {hot:,}; warm tier {files[0]} files, {files[1]:,} rows "
                f"({time.perf_counter() - started:.0f} s to fill)",
                flush=True,
            )
            con = open_views(settings, engine, registry, "warm")
            duck = DuckDbRunner(con)
            warm_eval = Evaluator(duck, registry)

            split = {"hot": 0.0, "warm": 0.0}

            def catalog_run() -> None:
                started = time.perf_counter()
                with engine.begin() as conn:
                    conn.execute(text("TRUNCATE metric_alert_state, metric_alert_outbox"))
                store = AlertStore(engine)
                run = AnomalyRun(
                    settings,
                    catalog,
                    registry,
                    store,
                    Deliverer(store, lambda *_: None, None),
                    runner_factory(settings, engine, registry),
                    {},
                )
                run.run(now=end)
                hot_done = time.perf_counter()
                split["hot"], split["warm"] = hot_done - started, 0.0
                for metric in catalog:
                    at = latest_time(metric, end)
                    warm_eval.evaluate(metric, grid_for(metric, at, at))
                split["warm"] = time.perf_counter() - hot_done

            pg = runner_factory(settings, engine, registry)("hot")

            def bare_run(runner: SqlRunner, dialect: sql.Dialect) -> float:
                total = 0.0
                for metric in catalog:
                    at = latest_time(metric, end)
                    for query in bare_queries(metric, dialect, registry, at):
                        total += timed(lambda q=query: runner.rows(q))
                return total

            runs = []
            for _ in range(args.repeat):
                runs.append((timed(catalog_run), dict(split)))
            catalog_s, best = min(runs, key=lambda r: r[0])
            bare_hot = min(bare_run(pg, "postgres") for _ in range(args.repeat))
            bare_warm = min(bare_run(duck, "duckdb") for _ in range(args.repeat))
            con.close()
            engine.dispose()
    bare_s = bare_hot + bare_warm
    metrics = len(catalog)
    print(
        f"catalog ({metrics} metrics, newest 4 evaluations each with alert state, plus the warm "
        f"tier): {catalog_s:.2f} s (hot run {best['hot']:.2f} s + warm {best['warm']:.2f} s); "
        f"bare SQL summed: hot {bare_hot:.2f} s + warm {bare_warm:.2f} s"
    )
    print(
        f"anomaly: catalog {catalog_s:.2f} s, bare SQL {bare_s:.2f} s, ratio {bare_s / catalog_s:.2f}"
    )


if __name__ == "__main__":
    main()
