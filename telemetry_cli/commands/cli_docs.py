"""``telemetry cli-docs``: ``docs/cli.md``, the command reference, generated from the commands.

Every command and group, depth first in the order ``telemetry --help`` lists them, with its
own help text as click renders it (usage, description, options) at a fixed width, so the page
is the same on every machine. ``--check`` fails when the page differs from the commands.
"""

from __future__ import annotations

import click

from telemetry_cli.commands import ROOT, write_or_check

CLI_DOCS_PATH = ROOT / "docs" / "cli.md"
_WIDTH = 100
_HEADER = (
    "# Command reference\n\n"
    "<!-- Generated from the click commands by `telemetry cli-docs` (`make docs`). "
    "Do not edit: `make test` fails when this page has drifted. -->\n\n"
    "`telemetry` is installed in `.venv/bin/` by `make setup`. Commands marked *(services)* "
    "reach PostgreSQL, Pub/Sub or GCS; in a checkout where `make dev` runs they use its local "
    "stack.\n"
)


def render_reference(root: click.Command, stack_commands: set[click.Command]) -> str:
    """The command reference of ``root`` and everything under it, as markdown."""
    parts = [_HEADER]
    for path, command in _walk(root, ["telemetry"]):
        if command is root:
            continue
        ctx = click.Context(command, info_name=path[-1], terminal_width=_WIDTH)
        ctx.max_content_width = _WIDTH
        marker = " *(services)*" if command in stack_commands else ""
        helped = command.get_help(ctx).replace(f"Usage: {path[-1]}", f"Usage: {' '.join(path)}")
        parts.append(f"\n## `{' '.join(path)}`{marker}\n\n```text\n{helped}\n```\n")
    return "".join(parts)


def _walk(command: click.Command, path: list[str]) -> list[tuple[list[str], click.Command]]:
    found = [(path, command)]
    if isinstance(command, click.Group):
        ctx = click.Context(command, info_name=path[-1])
        for name in command.list_commands(ctx):
            child = command.get_command(ctx, name)
            if child is not None and not child.hidden:
                found += _walk(child, [*path, name])
    return found


@click.command("cli-docs")
@click.option("--check", is_flag=True, help="Fail when docs/cli.md differs from the commands.")
def cli_docs(check: bool) -> None:
    """Write docs/cli.md, the command reference, from the commands themselves."""
    from telemetry_cli.commands import STACK_COMMANDS

    root = click.get_current_context().find_root().command
    stacked = set(STACK_COMMANDS)
    for _, command in _walk(root, ["telemetry"]):  # a marked group marks its subcommands
        if command in stacked and isinstance(command, click.Group):
            stacked.update(c for _, c in _walk(command, ["x"]))
    text = render_reference(root, stacked)
    write_or_check({CLI_DOCS_PATH: text}, check, "telemetry cli-docs")
