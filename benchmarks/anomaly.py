"""The anomaly function's evaluation of the whole catalog, beside each metric's bare SQL.

A fresh local stack (PostgreSQL, GCS emulator) gets ``--events`` generated events (1 M by
default) over the last ``--days`` days; everything but the last day is snapshotted into the warm
tier (so the hot tier holds every row and the warm tier all but the newest day).

Measured side by side in one run, each best of ``--repeat``:

* **catalog**: what the anomaly function does on its schedule for the whole catalog (every
  metric with a query; the two gauges read a probe, not rows): each metric's new evaluation time
  judged with its alert state under a row lock, the outbox written, delivery run; the state is
  primed (untimed) with the evaluations up to the previous time, as the run before left it.
  Plus every metric's newest evaluation over the warm tier through DuckDB;
* **bare SQL**: for each metric, the plainest SQL giving its newest value, run alone: one
  aggregate over the window's rows (``percentile_cont`` for a quantile, a ``GROUP BY`` for a
  distribution and its baseline) on PostgreSQL, and the same over the warm files in DuckDB;
  the times summed.

A run on a fresh state (the newest ``m`` evaluations per metric, as after a pause) is printed
beside them for information.

Last line: ``anomaly: <k> metrics in <s> s, overhead ratio <r>`` with s the catalog's time and
r = catalog / bare SQL (the issue's goal: r <= 1.2).
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
from shared.metrics.evaluate import (  # noqa: E402
    DuckDbRunner,
    Evaluator,
    GroupedEvaluation,
    SqlRunner,
    grid_for,
    latest_time,
)
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


def bare_grouped(
    measure: Measure, dialect: sql.Dialect, registry: Registry, span: sql.Span, by: str
) -> str:
    rows = sql.rows_sql(measure, dialect, registry, span, None, group=by)
    total = "sum(w * v)" if measure.agg == "sum" else "sum(w)"
    return f"SELECT g, {total} FROM ({rows}) r GROUP BY g"


def bare_queries(
    metric: Metric, dialect: sql.Dialect, registry: Registry, at: datetime
) -> list[str]:
    """The plainest SQL for the metric's value at ``at`` (one window, no expansion; a grouped
    metric: one GROUP BY per measure over its window, and one over its baseline)."""
    grid = grid_for(metric, at, at)
    if metric.group_by is not None:
        end = int(at.timestamp())
        spans = [sql.Span(end - int(metric.window_td.total_seconds()), end)]
        if metric.baseline:
            start = spans[0].start_s
            spans.append(
                sql.Span(start - int(parse_duration(metric.baseline).total_seconds()), start)
            )
        return [
            bare_grouped(m, dialect, registry, span, metric.group_by)
            for m in metric.measures
            for span in spans
        ]
    if metric.kind == "total" and metric.measure:
        return [bare_measure(metric.measure, dialect, registry, grid)]
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
            with engine.begin() as conn:
                # Planner statistics, as autovacuum keeps them in a running deployment (a table
                # filled a moment ago has none, and its plans would be guesses).
                conn.execute(text("ANALYZE"))
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

            def anomaly_run() -> AnomalyRun:
                store = AlertStore(engine)
                return AnomalyRun(
                    settings,
                    catalog,
                    registry,
                    store,
                    Deliverer(store, lambda *_: None, None),
                    runner_factory(settings, engine, registry),
                    {},
                )

            def fresh_state() -> None:
                with engine.begin() as conn:
                    conn.execute(text("TRUNCATE metric_alert_state, metric_alert_outbox"))

            def primed() -> AnomalyRun:
                """The state a scheduled run finds: judged up to each metric's previous time."""
                fresh_state()
                run = anomaly_run()
                for metric in catalog:
                    run.run_metric(metric, latest_time(metric, end) - metric.grain_td)
                return run

            def catalog_run(run: AnomalyRun) -> None:
                started = time.perf_counter()
                report = run.run(now=end)
                assert all(o.observation is not None for o in report.outcomes)
                hot_done = time.perf_counter()
                for metric in catalog:
                    at = latest_time(metric, end)
                    if metric.group_by is not None:
                        GroupedEvaluation(warm_eval, metric).evaluate(grid_for(metric, at, at))
                    else:
                        warm_eval.evaluate(metric, grid_for(metric, at, at))
                split["hot"] = hot_done - started
                split["warm"] = time.perf_counter() - hot_done

            def catch_up_run() -> float:
                fresh_state()
                run = anomaly_run()
                return timed(lambda: run.run(now=end))

            pg = runner_factory(settings, engine, registry)("hot")

            def bare_run(runner: SqlRunner, dialect: sql.Dialect) -> float:
                total = 0.0
                for metric in catalog:
                    at = latest_time(metric, end)
                    for query in bare_queries(metric, dialect, registry, at):
                        total += timed(lambda q=query: runner.rows(q))
                return total

            runs = []
            catch_up = []
            bare_hots, bare_warms = [], []
            for _ in range(args.repeat):  # taking turns, so the machine's noise hits all alike
                run = primed()
                runs.append((timed(lambda r=run: catalog_run(r)), dict(split)))
                catch_up.append(catch_up_run())
                bare_hots.append(bare_run(pg, "postgres"))
                bare_warms.append(bare_run(duck, "duckdb"))
            catalog_s, best = min(runs, key=lambda r: r[0])
            bare_hot, bare_warm = min(bare_hots), min(bare_warms)
            con.close()
            engine.dispose()
    bare_s = bare_hot + bare_warm
    metrics = len(catalog)
    print(
        f"catalog, scheduled run ({metrics} metrics, one new evaluation each with alert state and "
        f"outbox, plus the warm tier): {catalog_s:.2f} s = hot run {best['hot']:.2f} s + warm "
        f"{best['warm']:.2f} s; bare SQL summed: hot {bare_hot:.2f} s + warm {bare_warm:.2f} s "
        f"(hot overhead {best['hot'] / bare_hot:.2f}, warm {best['warm'] / bare_warm:.2f})"
    )
    print(f"a run on a fresh state (newest 4 evaluations per metric): {min(catch_up):.2f} s")
    print(
        f"anomaly: {metrics} metrics in {catalog_s:.2f} s, overhead ratio {catalog_s / bare_s:.2f}"
    )


if __name__ == "__main__":
    main()
