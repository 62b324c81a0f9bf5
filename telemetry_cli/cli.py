"""The ``telemetry`` command line: the root group, and every command registered on it.

The commands themselves live one per module in ``telemetry_cli/commands/`` (and, for the
metrics, the chaos run, capacity and the canary, beside their logic). ``docs/cli.md`` is
generated from them (``telemetry cli-docs``); ``make test`` fails when it has drifted.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from shared.errors import TelemetryError
from shared.observability.log import configure_logging
from shared.settings import reset_settings
from telemetry_cli.canary import canary_command
from telemetry_cli.capacity import capacity
from telemetry_cli.chaos.command import chaos
from telemetry_cli.commands import STACK_COMMANDS, fail
from telemetry_cli.commands.check import check
from telemetry_cli.commands.cli_docs import cli_docs
from telemetry_cli.commands.dev import dev
from telemetry_cli.commands.dlq import dlq
from telemetry_cli.commands.generate import generate
from telemetry_cli.commands.lifecycle import archive, audit, erase, retention
from telemetry_cli.commands.logs import logs
from telemetry_cli.commands.migrate import migrate
from telemetry_cli.commands.otlp import otlp
from telemetry_cli.commands.query import query
from telemetry_cli.commands.registry import registry
from telemetry_cli.commands.sampling import sampling
from telemetry_cli.commands.snapshot import snapshot
from telemetry_cli.metrics.commands import metrics, report, reprice


class TelemetryGroup(click.Group):
    """The command group: service commands find the local stack, and service failures print
    one line that names what to set, never a traceback."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if command in STACK_COMMANDS:
            from telemetry_cli.local_stack import use_local_stack

            stack = use_local_stack()
            if stack is not None:
                click.echo(stack.describe(), err=True)
                reset_settings()
        return name, command, rest

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TelemetryError as exc:
            fail(exc)
        except Exception as exc:
            from shared.storage.failures import classify_failure

            failure = classify_failure(exc)
            if failure is None:
                raise  # a bug: its own type and traceback
            click.echo(f"error: {failure}{_local_hint(failure)}", err=True)
            sys.exit(1)


def _local_hint(failure: TelemetryError) -> str:
    """What an operator at this checkout can do about a service failure (empty: nothing)."""
    from shared.errors import ConfigurationError, ServiceUnavailable
    from shared.settings import get_settings

    if isinstance(failure, ServiceUnavailable):
        settings = get_settings()
        hosts = {
            "PUBSUB_EMULATOR_HOST": settings.pubsub_emulator_host,
            "STORAGE_EMULATOR_HOST": settings.storage_emulator_host,
        }
        where = ", ".join(f"{name}={value}" for name, value in hosts.items() if value)
        target = f" ({where})" if where else ""
        return (
            f"; is `make dev` running{target}, or do PUBSUB_EMULATOR_HOST / "
            "STORAGE_EMULATOR_HOST name the right hosts?"
        )
    if isinstance(failure, ConfigurationError) and "credentials" in failure.message:
        return "; or start `make dev` in this checkout (operator commands then use it)"
    return ""


@click.group(cls=TelemetryGroup)
@click.option(
    "--log-level", default="WARNING", show_default=True, help="Level of JSON logs on stderr."
)
def cli(log_level: str) -> None:
    """Telemetry pipeline tools: local stack, registry, migrations, synthetic data."""
    configure_logging(log_level)


for _command in (
    dev,
    migrate,
    registry,
    generate,
    sampling,
    dlq,
    snapshot,
    query,
    otlp,
    check,
    logs,
    retention,
    archive,
    erase,
    audit,
    capacity,
    chaos,
    canary_command(),
    metrics,
    report,
    reprice,
    cli_docs,
):
    cli.add_command(_command)


def main() -> None:
    """Console-script entry point."""
    cli()


if __name__ == "__main__":  # pragma: no cover
    main()
