"""Lifecycle commands: ``retention``, ``archive verify|restore``, ``erase [status|verify]`` and
``audit verify``. Each runs what the lifecycle function runs, against the configured deployment
(or the local stack of ``telemetry dev``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from telemetry_cli.commands import needs_stack

if TYPE_CHECKING:  # imported when a command runs: `telemetry --help` stays fast
    from shared.storage.erasure import ErasureRequest
    from shared.storage.lifecycle import Lifecycle
    from shared.storage.retention_item import RetentionItem


def _lifecycle() -> Lifecycle:
    from shared.settings import get_settings
    from shared.storage.lifecycle import Lifecycle

    return Lifecycle.from_settings(get_settings())


def _size(value: int) -> str:
    size = float(value)
    for unit in ("B", "KB", "MB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


@needs_stack
@click.command()
@click.option("--dry-run", is_flag=True, help="Print what would go, with sizes; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def retention(dry_run: bool, as_json: bool) -> None:
    """Apply retention on every tier (what the daily job runs); resume unfinished erasures."""
    lifecycle = _lifecycle()

    def show(item: RetentionItem) -> None:
        if as_json:
            return
        verb = {"drop": "would drop", "delete": "would delete", "create": "would create"}
        action = verb.get(item.action, item.action) if dry_run else item.action
        click.echo(
            f"{item.tier:4} {action:12} {item.subject}  {item.rows} rows  {_size(item.bytes)}"
            f"  ({item.reason}{'; ' + item.verified_by if item.verified_by else ''})"
        )

    from shared.pubsub.alerts import alert_sender

    alert = alert_sender(lifecycle.settings)
    report = lifecycle.retention(progress=show, alert=alert).run(dry_run=dry_run)
    resumed = []
    if not dry_run:
        eraser = lifecycle.eraser()
        resumed = [eraser.run(r).request_id for r in eraser.unfinished()]
    if as_json:
        click.echo(json.dumps({**report.to_json(), "erasures_resumed": resumed}, indent=2))
        return
    kept = sum(1 for i in report.items if i.action == "keep")
    click.echo(
        f"{len(report.items)} items{' (dry run: nothing changed)' if dry_run else ''}, "
        f"{kept} kept past retention, {len(resumed)} erasures resumed"
    )


@needs_stack
@click.group()
def archive() -> None:
    """The cold archive: verify it, restore a conversation."""


@archive.command("verify")
@click.option("--deep", is_flag=True, help="Also read every object and compare its SHA-256.")
def archive_verify(deep: bool) -> None:
    """Check every archived object against its manifest; exit 1 on any problem."""
    from tqdm import tqdm

    from shared.storage.cold.verify import verify_archives

    lifecycle = _lifecycle()
    with tqdm(desc="manifests", unit="", file=sys.stderr, disable=None) as bar:
        report = verify_archives(lifecycle.engine, lifecycle.bucket, deep, bar.update)
    for problem in report.problems:
        click.echo(f"problem: {problem}", err=True)
    click.echo(
        f"{report.manifests} manifests, {report.objects} objects checked, "
        f"{len(report.problems)} problems"
    )
    if report.problems:
        sys.exit(1)


@archive.command("restore")
@click.argument("conversation")
@click.option(
    "--to",
    "target",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for the artifacts (default: ./restored/<conversation>).",
)
def archive_restore(conversation: str, target: Path | None) -> None:
    """Bring a conversation's artifacts back, decrypted and checked."""
    from tqdm import tqdm

    from shared.storage.cold.manifest import load_manifest

    lifecycle = _lifecycle()
    store = lifecycle.archive()
    with lifecycle.engine.connect() as conn:
        manifest = load_manifest(conn, conversation)
    total = manifest.bytes if manifest else 0
    folder = target or Path("restored") / "".join(
        c if c.isalnum() or c in "-_." else "_" for c in conversation
    )
    with tqdm(
        total=total, desc="restore", unit="B", unit_scale=True, file=sys.stderr, disable=None
    ) as bar:
        paths = store.restore(conversation, folder, bar.update)
    for path in paths:
        click.echo(f"{path}  {path.stat().st_size} bytes")
    click.echo(f"restored {len(paths)} artifacts into {folder}")


def _print_request(request: ErasureRequest) -> None:
    receipt: dict[str, Any] = request.receipt
    click.echo(f"request {request.request_id}: {request.stage}")
    click.echo(json.dumps(receipt, indent=2))


@needs_stack
@click.group(invoke_without_command=True)
@click.option("--user-id", "user_ids", multiple=True, help="A person to erase (repeatable).")
@click.option(
    "--user-ids-file",
    type=click.File("r"),
    default=None,
    help="A file of user ids, one per line (a batch: one pass over every tier).",
)
@click.pass_context
def erase(ctx: click.Context, user_ids: tuple[str, ...], user_ids_file: Any) -> None:
    """Erase people from every tier; prints the receipt."""
    if ctx.invoked_subcommand is not None:
        return
    people = list(user_ids)
    if user_ids_file is not None:
        people += [line.strip() for line in user_ids_file if line.strip()]
    if not people:
        raise click.UsageError("name someone: --user-id ID or --user-ids-file F")
    eraser = _lifecycle().eraser(progress=lambda line: click.echo(f"  {line}", err=True))
    request = eraser.submit(people)
    click.echo(
        f"request {request.request_id}: {request.persons} people suppressed"
        + ("" if request.created else " (an earlier request for the same people)"),
        err=True,
    )
    _print_request(eraser.run(request.request_id))


@erase.command("status")
@click.argument("request_id")
def erase_status(request_id: str) -> None:
    """Where a request stands, with its receipt."""
    _print_request(_lifecycle().eraser().status(request_id))


@erase.command("verify")
@click.argument("request_id")
def erase_verify(request_id: str) -> None:
    """Scan every tier for the request's people; exit 1 unless nothing remains."""
    found = _lifecycle().eraser().verify(request_id)
    for place, count in found.items():
        click.echo(f"{place:32} {count}")
    remaining = sum(found.values())
    click.echo("nothing remains" if not remaining else f"{remaining} remain")
    if remaining:
        sys.exit(1)


@needs_stack
@click.group()
def audit() -> None:
    """The lifecycle's audit log."""


@audit.command("verify")
def audit_verify() -> None:
    """Check the audit log's hash chain end to end; exit 1 naming the first broken link."""
    from shared.storage.audit import verify_chain

    checked, broken = verify_chain(_lifecycle().engine)
    if broken is not None:
        click.echo(f"broken: {broken} ({checked} entries read)", err=True)
        sys.exit(1)
    click.echo(f"{checked} entries, chain intact")
