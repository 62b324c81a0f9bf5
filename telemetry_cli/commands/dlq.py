"""``telemetry dlq``: what the dead-letter queue holds, and replaying it."""

from __future__ import annotations

import sys

import click

from telemetry_cli.commands import needs_stack


@needs_stack
@click.group(invoke_without_command=True)
@click.option("--limit", default=10_000, show_default=True, help="Messages to look at, at most.")
@click.pass_context
def dlq(ctx: click.Context, limit: int) -> None:
    """List what sits in the dead-letter subscription, by reason (nothing is consumed)."""
    if ctx.invoked_subcommand is not None:
        return
    from shared.pubsub import resources as names
    from shared.pubsub.dlq_hold import summarise
    from shared.settings import get_settings

    summary = summarise(get_settings(), limit)
    click.echo(f"{summary.messages} messages, {summary.events} events in {names.SUBSCRIPTION_DLQ}")
    for reason, count in summary.by_reason.most_common():
        click.echo(f"{count:8d}  {reason}")


@dlq.command("replay")
@click.option(
    "--reason",
    "reason_contains",
    default=None,
    help="Only messages whose reason contains this text.",
)
@click.option("--limit", type=int, default=None, help="Replay at most this many messages.")
@click.option(
    "--exhausted",
    is_flag=True,
    help="Only messages Pub/Sub dead-lettered after max delivery attempts (an outage), "
    "not those the sink dead-lettered for a reason.",
)
def dlq_replay(reason_contains: str | None, limit: int | None, exhausted: bool) -> None:
    """Republish dead-lettered messages to the main topic (after a fix); idempotent."""
    from tqdm import tqdm

    from shared.settings import get_settings
    from telemetry_cli.dlq import replay

    with tqdm(desc="replayed", unit="msg", file=sys.stderr, disable=None) as bar:
        replayed, skipped = replay(
            get_settings(), reason_contains, limit, bar.update, exhausted_only=exhausted
        )
    click.echo(f"replayed {replayed} messages to the main topic; {skipped} left in place")


#: ``--table``, repeatable, for the warm-tier commands.
