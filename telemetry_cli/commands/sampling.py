"""``telemetry sampling``: the incident override of sampling, through the runtime flags object."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import click

from telemetry_cli.commands import needs_stack


@needs_stack
@click.group()
def sampling() -> None:
    """The sampling incident override (every rate 1.0), switched without a deploy."""


def _parse_duration(text: str) -> timedelta:
    units = {"m": 60, "h": 3600, "d": 86400}
    try:
        value, unit = float(text[:-1]), text[-1]
        seconds = value * units[unit]
    except (ValueError, KeyError, IndexError):
        raise click.BadParameter(f"{text!r} is not a duration like 30m, 4h or 2d") from None
    if not 0 < seconds <= 7 * 86400:
        raise click.BadParameter("the override lasts between a minute and 7 days")
    return timedelta(seconds=seconds)


@sampling.command("override")
@click.option("--for", "duration", default="4h", show_default=True, help="How long: 30m, 4h, 2d.")
@click.option("--reason", default=None, help="Why (an incident id; shown by `status`).")
def sampling_override(duration: str, reason: str | None) -> None:
    """Raise every sampling rate to 1.0 until the given time has passed."""
    from shared.policy.flags import Flags, flags_summary, write_flags
    from shared.storage.flags_object import GcsFlagStore

    until = datetime.now(UTC) + _parse_duration(duration)
    flags = Flags(sampling_override_until=until, reason=reason)
    write_flags(flags, GcsFlagStore())
    click.echo(json.dumps(flags_summary(flags)))


@sampling.command("clear")
def sampling_clear() -> None:
    """End the override now (rates go back to the configured ones)."""
    from shared.policy.flags import Flags, flags_summary, write_flags
    from shared.storage.flags_object import GcsFlagStore

    write_flags(Flags(), GcsFlagStore())
    click.echo(json.dumps(flags_summary(Flags())))


@sampling.command("status")
def sampling_status() -> None:
    """Show whether the override is on, until when, and why."""
    from shared.policy.flags import flags_summary, read_flags
    from shared.storage.flags_object import GcsFlagStore

    click.echo(json.dumps(flags_summary(read_flags(GcsFlagStore()))))
