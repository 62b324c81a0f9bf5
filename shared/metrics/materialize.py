"""The catalog's values, stored where dashboards and analysts read them.

* **PostgreSQL materialized views**, one per metric (``metric_<name>``): its value at every
  evaluation time of the hot tier's 30 days, recomputed by each refresh from the same SQL the
  alerts use. Grafana's panels read them. A view whose definition no longer matches the catalog
  is dropped and created again; refreshes are ``CONCURRENTLY``, so panels never wait.
* **Parquet per day** in ``gs://BUCKET/analytics/metrics/metric_date=YYYY-MM-DD/``: every
  metric's evaluations of that day (value, ``n``, status), read by DuckDB and BigQuery beside the
  events. A day is written whole, create-only, and rewritten only when its values changed.

Gauges have no history: they are in neither.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Engine, text

from shared.contract.registry.loader import Registry
from shared.metrics import sql
from shared.metrics.catalog import Catalog, Metric
from shared.metrics.evaluate import Evaluator, grid_for
from shared.storage.layout import WARM_PREFIX
from shared.storage.warm.objects import upload_create_only

logger = logging.getLogger(__name__)

METRICS_PREFIX = f"{WARM_PREFIX}metrics/"
_COMMENT = "telemetry metric view "


def view_name(metric: Metric) -> str:
    """The metric's materialized view."""
    return f"metric_{metric.name}"


def metrics_object_name(day: date) -> str:
    """The Parquet object of one day's metric values."""
    return f"{METRICS_PREFIX}metric_date={day.isoformat()}/metrics.parquet"


@dataclass
class MaterializeReport:
    """What one run refreshed and wrote."""

    views: dict[str, str] = field(default_factory=dict)
    days: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The report as JSON."""
        return {"views": dict(self.views), "days": dict(self.days)}


def refresh_views(engine: Engine, catalog: Catalog, registry: Registry) -> dict[str, str]:
    """Create (or re-create, when the catalog changed) and refresh every metric's view."""
    done: dict[str, str] = {}
    for metric in catalog:
        if metric.kind == "gauge":
            continue
        name = view_name(metric)
        body = sql.view_sql(metric, registry)
        signature = hashlib.sha256(body.encode()).hexdigest()[:16]
        keys = "time, category" if metric.kind == "distribution" else "time"
        with engine.begin() as conn:
            comment = conn.execute(
                text("SELECT obj_description(to_regclass(:n), 'pg_class')"), {"n": name}
            ).scalar()
            if comment == _COMMENT + signature:
                conn.exec_driver_sql(f"REFRESH MATERIALIZED VIEW CONCURRENTLY {name}")
                done[metric.name] = "refreshed"
                continue
            conn.exec_driver_sql(f"DROP MATERIALIZED VIEW IF EXISTS {name}")
            conn.exec_driver_sql(f"CREATE MATERIALIZED VIEW {name} AS {body}")
            conn.exec_driver_sql(f"CREATE UNIQUE INDEX {name}_key ON {name} ({keys})")
            conn.exec_driver_sql(f"COMMENT ON MATERIALIZED VIEW {name} IS '{_COMMENT}{signature}'")
            done[metric.name] = "created" if comment is None else "re-created"
    logger.info("metric views refreshed", extra={"views": len(done)})
    return done


def day_table(catalog: Catalog, evaluator: Evaluator, day: date) -> pa.Table:
    """Every metric's evaluations during ``day`` (UTC) as one Arrow table."""
    start = datetime.combine(day, time(), UTC)
    end = start + timedelta(days=1) - timedelta(seconds=1)
    columns: dict[str, list[Any]] = {
        k: [] for k in ("metric", "evaluated_at", "status", "value", "n", "unit", "kind")
    }
    for metric in catalog:
        if metric.kind == "gauge":
            continue
        for obs in evaluator.evaluate(metric, grid_for(metric, start, end)):
            columns["metric"].append(metric.name)
            columns["evaluated_at"].append(obs.at)
            columns["status"].append(obs.status)
            # 12 significant digits: DuckDB sums floats in parallel, so the last bits of a value
            # vary from run to run, and a day whose values did not change must give the same
            # file (it is rewritten only when its bytes differ).
            columns["value"].append(None if obs.value is None else float(f"{obs.value:.12g}"))
            columns["n"].append(obs.n)
            columns["unit"].append(metric.unit)
            columns["kind"].append(metric.kind)
    schema = pa.schema(
        [
            ("metric", pa.string()),
            ("evaluated_at", pa.timestamp("us", tz="UTC")),
            ("status", pa.string()),
            ("value", pa.float64()),
            ("n", pa.int64()),
            ("unit", pa.string()),
            ("kind", pa.string()),
        ]
    )
    return pa.Table.from_pydict(columns, schema=schema)


def write_days(
    bucket: Any, catalog: Catalog, evaluator: Evaluator, days: list[date]
) -> dict[str, int]:
    """Write each day's values to the warm tier; rows written per day."""
    written: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="metrics-") as folder:
        for day in days:
            table = day_table(catalog, evaluator, day)
            path = Path(folder) / f"{day.isoformat()}.parquet"
            pq.write_table(table, path, compression="zstd")
            upload_create_only(bucket, metrics_object_name(day), path)
            written[day.isoformat()] = table.num_rows
            logger.info(
                "metric day written", extra={"day": day.isoformat(), "rows": table.num_rows}
            )
    return written
