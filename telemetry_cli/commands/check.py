"""``telemetry check``: the telemetry gate (registry lint, generated docs current)."""

from __future__ import annotations

import sys

import click

from telemetry_cli.commands.registry import registry_docs


@click.command("check")
def check() -> None:
    """The telemetry gate: registry lint and docs drift (tests run from `make telemetry-check`)."""
    from telemetry_cli.registry.lint import lint_file

    problems = lint_file()
    for problem in problems:
        click.echo(str(problem), err=True)
    ctx = click.get_current_context()
    ctx.invoke(registry_docs, check=True)
    if problems:
        sys.exit(1)
