"""``telemetry snapshot``: hot rows into verified Parquet, checks against hot rows, compaction."""

from __future__ import annotations

import sys
from datetime import datetime

import click

from shared.storage.layout import EVENT_TABLES
from telemetry_cli.commands import needs_stack

TABLE_OPTION = click.option(
    "--table",
    "tables",
    multiple=True,
    type=click.Choice(list(EVENT_TABLES)),
    help="Only this table (repeatable; default both).",
)


@needs_stack
@click.group(invoke_without_command=True)
@TABLE_OPTION
@click.option("--dry-run", is_flag=True, help="Print what would be written, write nothing.")
@click.pass_context
def snapshot(ctx: click.Context, tables: tuple[str, ...], dry_run: bool) -> None:
    """Write new hot-tier rows to the warm tier as verified Parquet (what the function runs)."""
    if ctx.invoked_subcommand is not None:
        return
    from tqdm import tqdm

    from shared.contract.registry import default_registry
    from shared.settings import get_settings
    from shared.storage.gcs import get_storage_client
    from shared.storage.hot.engine import get_engine
    from shared.storage.warm.snapshot import Snapshotter

    settings = get_settings()
    bucket = get_storage_client(settings).bucket(settings.telemetry_bucket)
    with tqdm(desc="snapshot", unit="rows", file=sys.stderr, disable=None) as bar:
        files = 0

        def progress(table: str, rows: int) -> None:
            nonlocal files
            files += 1
            bar.set_postfix(table=table, files=files)
            bar.update(rows)

        runs = Snapshotter(settings, get_engine(), bucket, default_registry(), progress).run(
            tables or None, dry_run=dry_run
        )
    for run in runs:
        verb = "would write" if dry_run else "wrote"
        click.echo(
            f"{run.table}: {verb} {run.rows} rows in "
            f"{len(run.planned) if dry_run else len(run.files)} files "
            f"(range {run.seq_lo}..{run.seq_hi}{', resumed' if run.resumed else ''})"
        )
        for day, rows in run.planned if dry_run else []:
            click.echo(f"  {day.isoformat()}  {rows} rows")
        for f in run.files:
            click.echo(f"  {f.object_name}  {f.rows} rows  {f.size} bytes")


@snapshot.command("verify")
@click.option(
    "--date", "day", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Only this day."
)
def snapshot_verify(day: datetime | None) -> None:
    """Compare per-day counts and digests of the hot and warm tiers; exit 1 on any mismatch."""
    from shared.settings import get_settings
    from shared.storage.gcs import get_storage_client
    from shared.storage.hot.engine import get_engine
    from shared.storage.warm.reconcile import reconcile

    settings = get_settings()
    bucket = get_storage_client(settings).bucket(settings.telemetry_bucket)
    checks, mismatches = reconcile(get_engine(), bucket, day.date() if day else None)
    for check in checks:
        click.echo(
            f"{check.table:17} {check.day.isoformat()}  hot {check.hot_rows:>9}  "
            f"warm {check.warm_rows:>9}  files {check.files}"
        )
    for mismatch in mismatches:
        click.echo(f"mismatch: {mismatch}", err=True)
    click.echo(f"{len(checks)} table-days compared, {len(mismatches)} mismatches")
    if mismatches:
        sys.exit(1)


@snapshot.command("compact")
@TABLE_OPTION
@click.option(
    "--date", "day", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Only this day."
)
def snapshot_compact(tables: tuple[str, ...], day: datetime | None) -> None:
    """Merge each day's small warm files into one (verified), then delete long-retired files."""
    from shared.settings import get_settings
    from shared.storage.gcs import get_storage_client
    from shared.storage.hot.engine import get_engine
    from shared.storage.warm.compaction import compact, delete_retired

    settings = get_settings()
    bucket = get_storage_client(settings).bucket(settings.telemetry_bucket)
    engine = get_engine()
    for table in tables or EVENT_TABLES:
        for merge in compact(settings, engine, bucket, table, day.date() if day else None):
            click.echo(
                f"{table} {merge.day.isoformat()}: {len(merge.inputs)} files -> "
                f"{merge.object_name} ({merge.rows} rows, {merge.bytes} bytes)"
            )
    click.echo(f"deleted {delete_retired(engine, bucket)} retired files past their grace period")
