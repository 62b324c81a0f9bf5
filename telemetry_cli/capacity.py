"""``telemetry capacity``: the capacity and cost model, and ``--measure`` for its rates.

``--measure`` runs the project's own benchmarks on this machine (ingest, sink, snapshot) and a
storage measurement (bytes per row in PostgreSQL and its WAL, on the topic, in Parquet), and
writes them with a description of the machine to
``telemetry_cli/capacity_model/measured_rates.json``.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from telemetry_cli.capacity_model.model import (
    RATES_PATH,
    Assumptions,
    Plan,
    load_prices,
    load_rates,
    plan,
)

ROOT = Path(__file__).resolve().parents[1]
_LAST_LINES = {
    "ingest": re.compile(r"^ingest: (\d+) events/s, ceiling (\d+)"),
    "sink": re.compile(r"^sink: (\d+) rows/s, ceiling (\d+) rows/s"),
    "snapshot": re.compile(r"^snapshot: (\d+) rows/s, ceiling (\d+)"),
}


def machine() -> dict[str, Any]:
    """What the rates were measured on."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        memory_kib = int(Path("/proc/meminfo").read_text().split()[1])
    except OSError:
        memory_kib = 0
    return {
        "cpu": model or platform.processor(),
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kib / 1024**2, 1),
        "system": platform.platform(),
        "python": platform.python_version(),
    }


def run_benchmark(name: str) -> tuple[float, float, str]:
    """Run ``benchmarks/<name>.py``; its figure, its ceiling and its last line."""
    click.echo(f"measuring: benchmarks/{name}.py …", err=True)
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / f"{name}.py")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise click.ClickException(f"benchmarks/{name}.py failed: {done.stderr[-2000:]}")
    match = _LAST_LINES[name].match(lines[-1])
    if match is None:
        raise click.ClickException(f"benchmarks/{name}.py ended with {lines[-1]!r}")
    click.echo(f"  {lines[-1]}", err=True)
    return float(match.group(1)), float(match.group(2)), lines[-1]


def measure_storage(events: int = 200_000) -> dict[str, float]:
    """Bytes per row: in PostgreSQL (table and indexes), in its WAL, on the topic, in Parquet."""
    import tempfile

    from sqlalchemy import text

    from shared.contract.intake import Intake
    from shared.contract.registry import default_registry
    from shared.contract.validation import EventValidator
    from shared.policy.privacy import Pseudonymiser
    from shared.policy.sampling import SamplingPolicy
    from shared.pubsub.message import encode_batches
    from shared.settings import DEV_PSEUDONYM_KEY, get_settings, parse_keyring, reset_settings
    from shared.storage.gcs import get_storage_client, reset_storage_client
    from shared.storage.hot.engine import make_engine
    from shared.storage.hot.writer import write_events
    from shared.storage.warm.snapshot import Snapshotter
    from telemetry_cli.generator import EventGenerator
    from telemetry_cli.stack.devstack import StackOptions, running_stack

    click.echo(f"measuring: storage bytes per row over {events} events …", err=True)
    with tempfile.TemporaryDirectory(prefix="capacity-") as tmp:
        options = StackOptions(state_dir=Path(tmp), with_functions=False, persistent=False)
        with running_stack(options) as stack:
            reset_settings()
            reset_storage_client()
            assert stack.database_url is not None
            engine = make_engine(stack.database_url)
            intake = Intake(
                EventValidator(),
                SamplingPolicy({}),
                Pseudonymiser(parse_keyring(DEV_PSEUDONYM_KEY)),
            )
            generator = EventGenerator(seed=7)
            stored: list[Any] = []
            now = datetime.now(UTC)
            while len(stored) < events:
                batch = generator.session(events=50)
                result = intake.process_events(batch, {"app_version": "1.8.0"}, now)
                stored.extend(result.accepted)
            message_bytes = sum(len(m[0]) for m in encode_batches(stored))
            with engine.connect() as conn:
                wal_before = conn.execute(text("SELECT pg_current_wal_lsn()")).scalar()
            for start in range(0, len(stored), 500):
                write_events(engine, stored[start : start + 500])
            with engine.connect() as conn:
                wal = conn.execute(
                    text("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), :b)"), {"b": wal_before}
                ).scalar()
                conn.execute(text("CHECKPOINT"))
                size = conn.execute(
                    text(
                        "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_inherits i "
                        "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent IN "
                        "('telemetry_events'::regclass, 'api_calls_log'::regclass)"
                    )
                ).scalar()
            settings = get_settings()
            bucket = get_storage_client(settings).bucket(settings.telemetry_bucket)
            Snapshotter(settings, engine, bucket, default_registry()).run()
            with engine.connect() as conn:
                parquet = conn.execute(text("SELECT sum(bytes) FROM warm_files")).scalar()
            engine.dispose()
    rows = len(stored)
    return {
        "hot_bytes_per_row": round(float(size or 0) / rows, 1),
        "wal_bytes_per_row": round(float(wal or 0) / rows, 1),
        "pubsub_bytes_per_event": round(message_bytes / rows, 1),
        "parquet_bytes_per_row": round(float(parquet or 0) / rows, 1),
    }


def measure(path: Path = RATES_PATH) -> dict[str, Any]:
    """Run every measurement and write the rates file."""
    ingest, _, ingest_line = run_benchmark("ingest")
    sink, copy_ceiling, sink_line = run_benchmark("sink")
    snapshot, _, snapshot_line = run_benchmark("snapshot")
    host = machine()
    rates = {
        "ingest_events_per_cpu_second": ingest,
        "sink_rows_per_second": sink,
        "postgres_rows_per_vcpu_second": round(copy_ceiling / max(1, host["cores"] or 1)),
        "snapshot_rows_per_second": snapshot,
        **measure_storage(),
    }
    data = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": host,
        "benchmarks": {"ingest": ingest_line, "sink": sink_line, "snapshot": snapshot_line},
        "rates": rates,
    }
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return data


def _money(value: float) -> str:
    return f"${value:,.2f}"


def render_table(p: Plan) -> str:
    """One volume's plan as aligned text."""
    lines = [f"capacity for {p.events_per_month:,.0f} events a month"]
    for section, figures in p.sections.items():
        lines.append(f"  {section}")
        for key, value in figures.items():
            lines.append(f"    {key.replace('_', ' '):34} {value}")
    lines.append("  cost per month")
    for key, value in p.costs.items():
        lines.append(f"    {key:34} {_money(value)}")
    per_million = p.total / (p.events_per_month / 1e6)
    lines.append(f"    {'total':34} {_money(p.total)}  ({_money(per_million)} per million events)")
    for item in p.breaks:
        lines.append(f"  breaks: {item}")
    return "\n".join(lines)


def render_markdown(plans: list[Plan]) -> str:
    """Several volumes side by side as a Markdown table (docs/capacity.md)."""
    header = "| | " + " | ".join(f"{p.events_per_month:,.0f}" for p in plans) + " |"
    lines = [header, "|---" * (len(plans) + 1) + "|"]
    rows: list[tuple[str, list[str]]] = []
    for section in plans[0].sections:
        for key in plans[0].sections[section]:
            rows.append(
                (
                    f"{section}: {key.replace('_', ' ')}",
                    [str(p.sections[section][key]) for p in plans],
                )
            )
    for key in plans[0].costs:
        rows.append((f"$ {key}", [_money(p.costs[key]) for p in plans]))
    rows.append(("**$ total per month**", [f"**{_money(p.total)}**" for p in plans]))
    rows.append(
        ("**$ per million events**", [_money(p.total / (p.events_per_month / 1e6)) for p in plans])
    )
    rows.append(("breaks", ["; ".join(p.breaks) or "—" for p in plans]))
    lines += [f"| {name} | " + " | ".join(values) + " |" for name, values in rows]
    return "\n".join(lines)


@click.command()
@click.option(
    "--events-per-month",
    "volumes",
    type=click.FloatRange(min=1),
    multiple=True,
    help="Events sent a month (repeat for a comparison; default 10 M, 100 M, 1 B, 10 B).",
)
@click.option("--ui-share", type=click.FloatRange(0, 1), default=0.6, show_default=True)
@click.option("--llm-share", type=click.FloatRange(0, 1), default=0.1, show_default=True)
@click.option(
    "--format",
    "output",
    type=click.Choice(["table", "json", "markdown"]),
    default="table",
    show_default=True,
)
@click.option(
    "--measure", "measure_first", is_flag=True, help="Measure the rates on this machine first."
)
def capacity(
    volumes: tuple[float, ...], ui_share: float, llm_share: float, output: str, measure_first: bool
) -> None:
    """Instances, database, storage and cost at a monthly volume, from measured rates."""
    if measure_first:
        measure()
    if not RATES_PATH.exists():
        raise click.ClickException("no measured rates yet: run `telemetry capacity --measure`")
    rates = load_rates()
    prices = load_prices()
    assumptions = Assumptions(ui_share=ui_share, llm_share=llm_share)
    plans = [plan(v, rates, prices, assumptions) for v in volumes or (1e7, 1e8, 1e9, 1e10)]
    host = rates["machine"]
    source = (
        f"rates measured {rates['measured_at']} on {host['cpu']} ({host['cores']} cores); "
        f"prices of {prices['retrieved']}"
    )
    if output == "json":
        click.echo(json.dumps({"source": source, "plans": [p.to_json() for p in plans]}, indent=2))
    elif output == "markdown":
        click.echo(render_markdown(plans))
    else:
        click.echo(source)
        for key, value in rates["rates"].items():
            click.echo(f"  measured {key.replace('_', ' '):34} {value}")
        for p in plans:
            click.echo(render_table(p))
