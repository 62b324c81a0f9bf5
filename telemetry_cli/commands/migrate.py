"""``telemetry migrate``: the database schema and partitions, and the functions' grants."""

from __future__ import annotations

import click

from shared.errors import TelemetryError
from telemetry_cli.commands import fail, needs_stack


@needs_stack
@click.command()
@click.option(
    "--grant-to",
    "grant_to",
    multiple=True,
    help="Database role (a function's IAM user) that writes events.",
)
@click.option(
    "--grant-lifecycle",
    "grant_lifecycle_to",
    multiple=True,
    help="Database role of the lifecycle function (it drops partitions and deletes rows).",
)
@click.option(
    "--grant-anomaly",
    "grant_anomaly_to",
    multiple=True,
    help="Database role of the anomaly function (reads all, keeps alert state, metric views).",
)
def migrate(
    grant_to: tuple[str, ...],
    grant_lifecycle_to: tuple[str, ...],
    grant_anomaly_to: tuple[str, ...],
) -> None:
    """Apply the database migrations and create the partitions around today (idempotent)."""
    from shared.storage.hot.engine import (
        get_engine,
        grant_anomaly,
        grant_lifecycle,
        grant_writer,
        run_migrations,
    )
    from shared.storage.warm.catalog import WRITER_UPDATES

    try:
        engine = get_engine()
        run_migrations(engine)
        for role in grant_to:
            grant_writer(engine, role, WRITER_UPDATES)
        for role in grant_lifecycle_to:
            grant_lifecycle(engine, role)
        for role in grant_anomaly_to:
            grant_anomaly(engine, role)
    except TelemetryError as exc:
        fail(exc)
    click.echo("migrations applied" + (f"; writers: {', '.join(grant_to)}" if grant_to else ""))
