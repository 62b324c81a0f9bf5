"""``telemetry otlp``: what ingest made of the OTLP exports it received."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click

from telemetry_cli.commands import needs_stack


@click.group()
def otlp() -> None:
    """OTLP ingest: what each instrumentation sent, and what became of it."""


@needs_stack
@otlp.command("report")
@click.option(
    "--since",
    type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
    required=True,
    help="From this day or time (UTC).",
)
@click.option("--top", default=20, show_default=True, help="Items listed per list, at most.")
@click.option("--format", "output", type=click.Choice(["text", "json"]), default="text")
def otlp_report(since: datetime, top: int, output: str) -> None:
    """Per instrumentation and version: spans, calls stored, spans refused (and why), spans
    not GenAI, the attribute names dropped and how often (never a value), log records refused."""
    from shared.contract.registry import default_registry
    from shared.settings import get_settings
    from shared.storage.hot.engine import get_engine
    from shared.storage.warm.query import run_duckdb
    from telemetry_cli.otlp_report import build_report, render_text, report_sql

    since = since.replace(tzinfo=UTC)
    result = run_duckdb(get_settings(), get_engine(), default_registry(), report_sql(since))
    sources = build_report(result.rows)
    if output == "json":
        click.echo(json.dumps([s.to_json() for s in sources], indent=1))
    else:
        click.echo(render_text(sources, since, top))
