"""A day of traffic through the capacity model: a diurnal curve and a 1 h sink outage at its peak.

For each volume (10 M, 100 M, 1 B, 10 B events a month), minute by minute over 24 hours: events
arrive on a diurnal curve (1.8x the mean at 14:00 UTC, 0.2x at 02:00); the sink is down from
14:00 to 15:00, so Pub/Sub holds the backlog; afterwards the sink drains at what it can take
(Cloud Run's default ceiling of 100 instances at the measured rate per instance, and never more
than the largest Cloud SQL machine's write ceiling). Printed per volume: the peak backlog, the
drain time, and every Pub/Sub or Cloud Run quota crossed (publish throughput, instances for
ingest's 10x burst, backlog older than the subscription's 7-day retention).
Rates: ``telemetry_cli/capacity_model/measured_rates.json`` (``telemetry capacity --measure``).
Last line: ``capacity: <volume> backlog <events> drained in <minutes> min; …``.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)

from telemetry_cli.capacity_model.model import (  # noqa: E402
    CLOUD_RUN_DEFAULT_MAX_INSTANCES,
    CLOUD_RUN_MAX_INSTANCES,
    PUBSUB_PUBLISH_QUOTA_BPS,
    SECONDS_PER_MONTH,
    Assumptions,
    drain_rate,
    load_prices,
    load_rates,
    plan,
)

VOLUMES = (1e7, 1e8, 1e9, 1e10)
OUTAGE = (14 * 60, 15 * 60)  # minutes of the day
RETENTION_MINUTES = 7 * 24 * 60


def diurnal(minute: int) -> float:
    """The share of the mean rate at a minute of the day (mean 1 over the day)."""
    return 1.0 + 0.8 * math.sin(2 * math.pi * (minute - 8 * 60) / (24 * 60))


def simulate(volume: float, data: dict[str, Any], a: Assumptions) -> dict[str, float | str]:
    rates = {k: float(v) for k, v in data["rates"].items()}
    kept = a.ui_share * a.ui_sample_rate + (1 - a.ui_share)
    mean = volume * kept / SECONDS_PER_MONTH  # stored rows per second
    vcpu = int(plan(volume, data, load_prices(), a).sections["cloud_sql"]["vcpu"])
    capacity = drain_rate(data, a, vcpu)
    backlog = peak = 0.0
    drained_at: float | None = None
    for minute in range(24 * 60):
        arriving = mean * diurnal(minute) * 60
        if OUTAGE[0] <= minute < OUTAGE[1]:
            backlog += arriving
        else:
            net = capacity * 60 - arriving  # what a minute of the sink takes off the backlog
            if drained_at is None and minute >= OUTAGE[1] and net > 0 and backlog <= net:
                drained_at = minute + backlog / net  # within this minute
            backlog = max(0.0, backlog - net)
        peak = max(peak, backlog)
    drain = (drained_at - OUTAGE[1]) if drained_at is not None else math.inf
    crossed = []
    peak_bytes = mean * a.peak_factor * rates["pubsub_bytes_per_event"]
    if peak_bytes > PUBSUB_PUBLISH_QUOTA_BPS:
        crossed.append("Pub/Sub publish throughput quota")
    ingest_instances = math.ceil(
        volume
        / SECONDS_PER_MONTH
        * a.peak_factor
        / (rates["ingest_events_per_cpu_second"] * a.target_utilisation)
    )
    if ingest_instances > CLOUD_RUN_MAX_INSTANCES:
        crossed.append(f"Cloud Run max instances (ingest needs {ingest_instances})")
    elif ingest_instances > CLOUD_RUN_DEFAULT_MAX_INSTANCES:
        crossed.append(f"Cloud Run default 100 instances (ingest needs {ingest_instances})")
    if mean * 1.8 > capacity:
        crossed.append("sink capacity below the diurnal peak: the backlog never drains")
    if drain > RETENTION_MINUTES:
        crossed.append("backlog outlives Pub/Sub's 7-day retention")
    return {
        "peak_backlog_events": peak,
        "peak_backlog_gib": peak * rates["pubsub_bytes_per_event"] / 1024**3,
        "drain_minutes": drain,
        "capacity_rows_per_second": capacity,
        "cloud_sql_vcpu": vcpu,
        "crossed": "; ".join(crossed) or "none",
    }


def main() -> None:
    data = load_rates()
    print(f"rates measured {data['measured_at']} on {data['machine']['cpu']}")
    a = Assumptions()
    summary = []
    for volume in VOLUMES:
        result = simulate(volume, data, a)
        drain = result["drain_minutes"]
        drain_text = f"{float(drain):.1f}" if math.isfinite(float(drain)) else "never"
        print(
            f"{volume:>16,.0f} events/month: peak backlog {result['peak_backlog_events']:,.0f} "
            f"events ({result['peak_backlog_gib']:.2f} GiB), drained {drain_text} min after the "
            f"outage (drain {result['capacity_rows_per_second']:,.0f} rows/s, Cloud SQL "
            f"{result['cloud_sql_vcpu']} vCPU); "
            f"quotas crossed: {result['crossed']}"
        )
        summary.append(
            f"{volume:.0e} backlog {result['peak_backlog_events']:,.0f} drained in {drain_text} min"
        )
    print("capacity: " + "; ".join(summary))


if __name__ == "__main__":
    main()
