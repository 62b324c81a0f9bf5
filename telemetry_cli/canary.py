"""``telemetry canary``: the command line of the canary (``shared/metrics/canary.py``)."""

from __future__ import annotations

import sys
from typing import Any

import click

from telemetry_cli.commands import needs_stack


def canary_command() -> Any:
    """The ``telemetry canary`` click command."""

    @needs_stack
    @click.command("canary")
    @click.option(
        "--target", required=True, help="The target deployment's ingest URL (/v1/events)."
    )
    @click.option(
        "--target-database-url",
        default=None,
        help="Read access to the target's hot tier (default: this deployment's DATABASE_URL).",
    )
    @click.option("--count", default=1000, show_default=True, help="Warm-tier events to replay.")
    @click.option("--run-id", default=None, help="Run again under this id (the same event ids).")
    @click.option(
        "--timeout", "timeout_s", default=600.0, show_default=True, help="Seconds to wait."
    )
    def canary(
        target: str,
        target_database_url: str | None,
        count: int,
        run_id: str | None,
        timeout_s: float,
    ) -> None:
        """Replay the newest warm-tier events into TARGET as canary traffic (new ids), wait
        until they land, and compare per-name counts and the catalog's values with the source.
        Prints every difference; exit 1 on any."""
        from shared.metrics.canary import run_canary  # loaded by this command alone
        from shared.settings import get_settings

        report = run_canary(
            get_settings(),
            target,
            target_database_url,
            count,
            run_id,
            timeout_s,
            progress=lambda line: click.echo(line, err=True),
        )
        for name, (want, got) in report.counts.items():
            click.echo(f"count  {name:28} source {want:>6}  canary {got:>6}")
        for name, (want, got) in report.metrics.items():
            click.echo(f"metric {name:28} source {_short(want):>12}  canary {_short(got):>12}")
        for difference in report.differences:
            click.echo(f"difference: {difference}")
        click.echo(
            f"canary {report.run_id}: {report.sent} sent, {report.accepted} accepted, "
            f"{report.landed} stored, {len(report.differences)} differences"
        )
        if report.differences:
            sys.exit(1)

    return canary


def _short(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, dict):
        return ",".join(f"{k}:{v:.3f}" for k, v in value.items())
    return f"{float(value):.6g}"
