"""``telemetry logs``: scan log files for personal data (canary values)."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.group()
def logs() -> None:
    """Log files: scan them for personal data."""


@logs.command("scan")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--canaries-file",
    "canary_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Canaries as kind<TAB>value lines (repeatable).",
)
@click.option("--canary", "inline", multiple=True, help="One canary as KIND=VALUE (repeatable).")
def logs_scan(folder: Path, canary_files: tuple[Path, ...], inline: tuple[str, ...]) -> None:
    """Read every log line under FOLDER (gzip too) and fail on any canary value: seeded user
    ids, session ids, prop values, transcript text. Prints file:line and the canary's kind,
    never the line."""
    from telemetry_cli.logscan import Canary, read_canaries, scan

    canaries: list[Canary] = []
    try:
        for path in canary_files:
            canaries += read_canaries(path)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    for item in inline:
        kind, sep, value = item.partition("=")
        if not sep or len(value) < 8:
            raise click.BadParameter(
                f"{item[:40]!r}: expected KIND=VALUE, a value of 8+ characters"
            )
        canaries.append(Canary(kind, value))
    if not canaries:
        raise click.UsageError("give the canaries: --canaries-file F or --canary KIND=VALUE")

    def progress(files: int, lines: int) -> None:
        click.echo(f"scanned {files} files, {lines} lines…", err=True)

    report = scan(folder, canaries, progress)
    for finding in report.findings:
        click.echo(str(finding))
    click.echo(
        f"scanned {report.files} files, {report.lines} lines for {len(canaries)} canaries: "
        f"{len(report.findings)} finding(s)",
        err=True,
    )
    if report.findings:
        sys.exit(1)
