"""The ``telemetry`` commands, one module per command or command group.

A command that reaches the pipeline's services (PostgreSQL, Pub/Sub, GCS) is marked with
:func:`needs_stack`: before it runs, the CLI finds the local stack of a running
``telemetry dev`` in this checkout and uses its endpoints (``telemetry_cli/local_stack.py``).
The other commands are local tooling.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn, TypeVar

import click

from shared.errors import TelemetryError

#: The repository's root (generated docs are named relative to it).
ROOT = Path(__file__).resolve().parents[2]
CommandT = TypeVar("CommandT", bound=click.Command)

#: The commands marked by :func:`needs_stack` (groups count for all their subcommands).
STACK_COMMANDS: set[click.Command] = set()


def needs_stack(command: CommandT) -> CommandT:
    """Mark a command (or group) that reaches the pipeline's services."""
    STACK_COMMANDS.add(command)
    return command


def fail(exc: TelemetryError) -> NoReturn:
    """Print a typed error as one line, and exit 1 (never a traceback)."""
    click.echo(f"error: {exc}", err=True)
    sys.exit(1)


def write_or_check(files: dict[Path, str], check: bool, command: str) -> None:
    """Write generated ``files``, or with ``check`` fail when any differs from what is there."""
    if check:
        stale = [
            p
            for p, text in files.items()
            if not p.exists() or p.read_text(encoding="utf-8") != text
        ]
        if stale:
            names = ", ".join(_shown(p) for p in stale)
            click.echo(f"{names} drifted from its source; run `{command}`", err=True)
            sys.exit(1)
        click.echo(f"{len(files)} generated file(s) current")
        return
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        click.echo(f"wrote {_shown(path)}")


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
