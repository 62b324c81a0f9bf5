"""The capacity and cost model: instances, database, storage and dollars at a monthly volume.

Every per-instance rate and every byte count per row comes from ``measured_rates.json``,
written by ``telemetry capacity --measure`` from this project's own benchmarks on the machine at
hand (the machine is recorded in the file). Prices come from ``prices.yaml`` (dated, with their
sources). What cannot be measured here is an :class:`Assumptions` field, documented in
``docs/capacity.md`` and printed with the plan.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
PRICES_PATH = HERE / "prices.yaml"
RATES_PATH = HERE / "measured_rates.json"
SECONDS_PER_MONTH = 30 * 86_400
HOURS_PER_MONTH = 730
GIB = 1024**3
TIB = 1024**4

#: Cloud Run's default ceiling of instances per service (raised on request up to 1,000).
CLOUD_RUN_DEFAULT_MAX_INSTANCES = 100
CLOUD_RUN_MAX_INSTANCES = 1000
#: The largest Cloud SQL Enterprise machine (vCPU).
CLOUD_SQL_MAX_VCPU = 96
#: Hot-tier size past which one PostgreSQL gets slow to maintain (index builds, vacuum, backups):
#: an assumption, documented in docs/capacity.md.
HOT_STORAGE_COMFORT_BYTES = 2 * 1024**4
#: Pub/Sub's default publish throughput quota in a large region (bytes/s).
PUBSUB_PUBLISH_QUOTA_BPS = 240 * 1024**2


@dataclass(frozen=True)
class Assumptions:
    """What the model cannot measure here; each is documented in docs/capacity.md."""

    ui_share: float = 0.6
    llm_share: float = 0.1
    ui_sample_rate: float = 0.2
    events_per_request: int = 50
    peak_factor: float = 10.0
    target_utilisation: float = 0.6
    vcpu: int = 1
    gib_per_vcpu: float = 0.5
    ingest_concurrency: int = 32
    sink_concurrency: int = 8
    #: Cloud SQL: vCPU that one measured core of this machine's PostgreSQL write path stands for.
    sql_gib_ram_per_vcpu: float = 3.75
    sql_min_vcpu: int = 2
    sql_storage_headroom: float = 1.5
    #: Raw artifacts archived per LLM call (transcript, response), bytes.
    cold_bytes_per_llm_call: int = 20_000
    #: Metrics the catalog evaluates, each scanning this many bytes per stored row per day.
    metrics: int = 16
    metric_bytes_per_row: int = 24
    outage_hours: float = 1.0


@dataclass
class Plan:
    """One volume's plan: sections of figures and their costs."""

    events_per_month: float
    assumptions: Assumptions
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    costs: dict[str, float] = field(default_factory=dict)
    breaks: list[str] = field(default_factory=list)

    @property
    def total(self) -> float:
        """Dollars per month."""
        return sum(self.costs.values())

    def to_json(self) -> dict[str, Any]:
        """The plan as data (``--format json``)."""
        return {
            "events_per_month": self.events_per_month,
            "assumptions": asdict(self.assumptions),
            "sections": self.sections,
            "costs_usd_per_month": {k: round(v, 2) for k, v in self.costs.items()},
            "total_usd_per_month": round(self.total, 2),
            "usd_per_million_events": round(self.total / (self.events_per_month / 1e6), 4),
            "breaks": self.breaks,
        }


@functools.cache
def load_prices(path: Path = PRICES_PATH) -> dict[str, Any]:
    """The dated list prices."""
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


def load_rates(path: Path = RATES_PATH) -> dict[str, Any]:
    """The measured rates (``telemetry capacity --measure`` writes them)."""
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _tiered_free(quantity: float, free: float) -> float:
    return max(0.0, quantity - free)


def plan(
    events_per_month: float,
    rates: dict[str, Any],
    prices: dict[str, Any],
    assumptions: Assumptions | None = None,
) -> Plan:
    """The plan for ``events_per_month`` sent events."""
    a = assumptions or Assumptions()
    r = rates["rates"]
    result = Plan(events_per_month, a)
    kept_share = a.ui_share * a.ui_sample_rate + (1 - a.ui_share)
    stored = events_per_month * kept_share
    mean_eps = events_per_month / SECONDS_PER_MONTH
    peak_eps = mean_eps * a.peak_factor
    stored_mean = stored / SECONDS_PER_MONTH
    stored_peak = stored_mean * a.peak_factor
    usable = a.vcpu * a.target_utilisation

    # Ingest: events per CPU-second of the function, measured through the real server.
    ingest_rate = float(r["ingest_events_per_cpu_second"])
    ingest_cpu_s = events_per_month / ingest_rate
    result.sections["ingest"] = {
        "events_per_second_mean": round(mean_eps, 1),
        "events_per_second_peak": round(peak_eps, 1),
        "instances_mean": max(1, math.ceil(mean_eps / (ingest_rate * usable))),
        "instances_peak": max(1, math.ceil(peak_eps / (ingest_rate * usable))),
        "per_instance_events_per_second": round(ingest_rate * usable),
    }
    requests = events_per_month / a.events_per_request
    result.costs["ingest (Cloud Run)"] = _cloud_run_cost(
        prices, ingest_cpu_s / a.target_utilisation, a, requests
    )

    # Cloud SQL's size comes first: it bounds how fast a backlog drains.
    per_vcpu = float(r["postgres_rows_per_vcpu_second"]) * a.target_utilisation
    vcpu = max(a.sql_min_vcpu, math.ceil(stored_peak / per_vcpu))
    vcpu = 2 ** math.ceil(math.log2(vcpu))

    # Pub/Sub: bytes per stored event on the topic (measured), published and delivered once.
    message_bytes = float(r["pubsub_bytes_per_event"])
    monthly_bytes = stored * message_bytes * 2
    backlog_events = stored_peak * 3600 * a.outage_hours
    sink_rate = float(r["sink_rows_per_second"]) * a.target_utilisation
    pg_ceiling = _postgres_write_ceiling(rates, a)
    drain_capacity = drain_rate(rates, a, vcpu)
    drain_s = (
        backlog_events / (drain_capacity - stored_peak)
        if drain_capacity > stored_peak
        else math.inf
    )
    result.sections["pubsub"] = {
        "bytes_per_second_peak": round(stored_peak * message_bytes),
        "gib_per_month": round(monthly_bytes / GIB, 1),
        "backlog_after_outage_events": round(backlog_events),
        "backlog_after_outage_gib": round(backlog_events * message_bytes / GIB, 2),
        "drain_rows_per_second": round(drain_capacity),
        "drain_minutes_at_peak": round(drain_s / 60, 1) if math.isfinite(drain_s) else None,
    }
    result.costs["Pub/Sub"] = (
        _tiered_free(monthly_bytes, prices["pubsub"]["free_gib"] * GIB) / TIB
    ) * prices["pubsub"]["per_tib"]
    if stored_peak * message_bytes > PUBSUB_PUBLISH_QUOTA_BPS:
        result.breaks.append("Pub/Sub publish quota (default 240 MB/s per region)")

    # Sink: rows per second of one instance through the sink's own path (measured).
    sink_instances = max(1, math.ceil(stored_peak / sink_rate))
    wal_per_day = stored / 30 * float(r["wal_bytes_per_row"])
    result.sections["sink"] = {
        "rows_per_second_mean": round(stored_mean, 1),
        "rows_per_second_peak": round(stored_peak, 1),
        "instances_peak": sink_instances,
        "postgres_wal_gib_per_day": round(wal_per_day / GIB, 2),
    }
    sink_cpu_s = stored / float(r["sink_rows_per_second"])
    result.costs["sink (Cloud Run)"] = _cloud_run_cost(
        prices, sink_cpu_s / a.target_utilisation, a, stored / 22.5
    )
    if sink_instances > CLOUD_RUN_DEFAULT_MAX_INSTANCES:
        result.breaks.append(f"sink needs {sink_instances} instances (default ceiling 100)")

    # Cloud SQL: 30 days of rows with indexes (measured bytes per row), vCPU for the peak.
    hot_bytes = stored / 30 * 30 * float(r["hot_bytes_per_row"]) * a.sql_storage_headroom
    result.sections["cloud_sql"] = {
        "storage_gib": round(hot_bytes / GIB, 1),
        "vcpu": vcpu,
        "ram_gib": round(vcpu * a.sql_gib_ram_per_vcpu, 1),
        "write_ceiling_rows_per_second": round(pg_ceiling),
    }
    sql = prices["cloud_sql"]
    result.costs["Cloud SQL"] = (
        vcpu * sql["vcpu_hour"] * HOURS_PER_MONTH
        + vcpu * a.sql_gib_ram_per_vcpu * sql["gib_ram_hour"] * HOURS_PER_MONTH
        + hot_bytes / GIB * (sql["ssd_gib_month"] + sql["backup_gib_month"])
    )
    if hot_bytes > HOT_STORAGE_COMFORT_BYTES:
        result.breaks.append(
            f"Cloud SQL holds {hot_bytes / 1024**4:.1f} TiB hot: keep 7 days in PostgreSQL and "
            "query the rest in BigQuery (a Pub/Sub BigQuery subscription writes it directly)"
        )
    if vcpu > CLOUD_SQL_MAX_VCPU or stored_peak > pg_ceiling:
        result.breaks.append(
            "Cloud SQL write ceiling: a Pub/Sub BigQuery subscription writes straight to "
            "BigQuery instead of the sink; AlloyDB or read replicas for the reads"
        )

    # Warm and cold storage.
    gcs = prices["gcs"]
    warm_bytes = stored / 30 * 180 * float(r["parquet_bytes_per_row"])
    llm_calls = events_per_month * a.llm_share
    cold_standard = llm_calls * 12 * a.cold_bytes_per_llm_call
    cold_archive = llm_calls * 12 * a.cold_bytes_per_llm_call
    result.sections["storage"] = {
        "warm_gib": round(warm_bytes / GIB, 1),
        "cold_standard_gib": round(cold_standard / GIB, 1),
        "cold_archive_gib": round(cold_archive / GIB, 1),
    }
    result.costs["warm tier (GCS)"] = warm_bytes / GIB * gcs["standard_gib_month"]
    result.costs["cold tier (GCS)"] = (
        cold_standard / GIB * gcs["standard_gib_month"]
        + cold_archive / GIB * gcs["archive_gib_month"]
    )
    snapshot_hours = stored / 30 / float(r["snapshot_rows_per_second"]) / 3600
    result.sections["snapshot"] = {"hours_per_day": round(snapshot_hours, 2)}
    if snapshot_hours > 12:
        result.breaks.append("snapshot on one instance (Dataflow or BigQuery take over)")

    # BigQuery: the metrics catalog scanning a day of typed columns, daily.
    scanned = stored / 30 * a.metrics * a.metric_bytes_per_row * 30
    result.sections["bigquery"] = {"tib_scanned_per_month": round(scanned / TIB, 3)}
    bq = prices["bigquery"]
    result.costs["BigQuery"] = (
        max(0.0, scanned / TIB - bq["free_tib_month"]) * bq["per_tib_scanned"]
    )
    return result


def drain_rate(rates: dict[str, Any], a: Assumptions, vcpu: int) -> float:
    """Rows/s the sink stores when a backlog waits: its instances (Cloud Run's default ceiling of
    100 at the measured rate), never more than the provisioned Cloud SQL takes."""
    r = rates["rates"]
    sink = float(r["sink_rows_per_second"]) * a.target_utilisation * CLOUD_RUN_DEFAULT_MAX_INSTANCES
    return min(sink, float(r["postgres_rows_per_vcpu_second"]) * vcpu)


def _postgres_write_ceiling(rates: dict[str, Any], a: Assumptions) -> float:
    """Rows/s the largest Cloud SQL machine takes, from the measured rows per vCPU-second."""
    return float(rates["rates"]["postgres_rows_per_vcpu_second"]) * CLOUD_SQL_MAX_VCPU * 0.5


def _cloud_run_cost(
    prices: dict[str, Any], vcpu_s: float, a: Assumptions, requests: float
) -> float:
    run = prices["cloud_run"]
    cpu = _tiered_free(vcpu_s, run["free_vcpu_seconds"]) * run["vcpu_second"]
    memory = _tiered_free(vcpu_s * a.gib_per_vcpu, run["free_gib_seconds"]) * run["gib_second"]
    calls = _tiered_free(requests, run["free_requests"]) / 1e6 * run["per_million_requests"]
    return float(cpu + memory + calls)
