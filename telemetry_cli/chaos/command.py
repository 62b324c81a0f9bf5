"""``telemetry chaos``: the command line of the chaos run (``make chaos``)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from telemetry_cli.chaos.run import ChaosReport


@click.command()
@click.option("--events", default=100_000, show_default=True, help="Events the clients make.")
@click.option(
    "--seed", type=int, default=None, help="Replay a run (printed first; random if unset)."
)
@click.option(
    "--postgres-outage-s", default=60.0, show_default=True, help="How long PostgreSQL is down."
)
@click.option(
    "--pubsub-down-s", default=5.0, show_default=True, help="How long the Pub/Sub emulator is down."
)
@click.option(
    "--browser-share", default=0.05, show_default=True, help="Share of events from Chromium."
)
@click.option(
    "--backend-share", default=0.1, show_default=True, help="Share of events from track_api_call."
)
def chaos(
    events: int,
    seed: int | None,
    postgres_outage_s: float,
    pubsub_down_s: float,
    browser_share: float,
    backend_share: float,
) -> None:
    """Load every tier while faults strike (a sink killed mid-message, PostgreSQL down, the
    Pub/Sub emulator restarted, triple deliveries, a snapshot killed mid-upload, skewed and late
    clients, an erasure), then reconcile a ledger of every event ingest accepted with the hot
    tier, the warm tier and the dead-letter queue. Exit 1 unless nothing was lost or doubled."""
    from telemetry_cli.chaos.faults import FaultSettings  # loaded by this command alone
    from telemetry_cli.chaos.run import ChaosOptions, ChaosRun

    options = ChaosOptions(
        events=events,
        seed=seed,
        faults=FaultSettings(postgres_outage_s=postgres_outage_s, pubsub_down_s=pubsub_down_s),
        browser_share=browser_share,
        backend_share=backend_share,
    )
    report = ChaosRun(options, lambda line: click.echo(line, err=True)).run()
    print_report(report)
    if not report.verdict.clean or report.log_findings:
        sys.exit(1)


def print_report(report: ChaosReport) -> None:
    """The run's findings; the last line is the issue's."""
    verdict, counts = report.verdict, report.counts
    for at, fault, detail in report.faults.entries:
        click.echo(f"  {at:7.1f} s  {fault:16} {detail}")
    click.echo(
        f"clients: {counts.made} events made ({counts.skewed} clock-skewed, {counts.late} 48 h "
        f"late, {counts.erased_person} of the erased person), {counts.requests} beacon requests, "
        f"{counts.retries} retried, {counts.gave_up} given up, {counts.client_dropped} dropped "
        "by track_api_call's client"
    )
    statuses = ", ".join(f"{k}: {v}" for k, v in sorted(report.ledger.statuses.items()))
    click.echo(
        f"ingest answers: {statuses}; {report.ledger.resent} events accepted again (client "
        f"retries), {report.ledger.rejected} rejected, {report.ledger.sampled_out} sampled out"
    )
    click.echo(
        f"relay: {report.duplicated_deliveries} messages delivered three times; functions "
        f"started again: {', '.join(report.restarted) or 'none'}"
    )
    click.echo(
        f"erased person: {verdict.erased_events} events accepted, {verdict.erased_found} "
        "found in a tier"
    )
    click.echo(
        f"hot vs warm: {verdict.days_compared} table-days compared, "
        f"{len(verdict.day_mismatches)} mismatches"
    )
    reasons = ", ".join(f"{r[:60]}: {n}" for r, n in verdict.reasons.most_common()) or "none"
    click.echo(
        f"dead letters: {verdict.dead_letter_messages} messages ({reasons}); "
        f"{verdict.dead_letter_copies} copies held"
    )
    for problem in [*verdict.unexplained, *verdict.day_mismatches, *verdict.gaps]:
        click.echo(f"problem: {problem}")
    if verdict.warm_duplicates:
        click.echo(f"problem: {verdict.warm_duplicates} duplicate rows in the warm tier")
    for finding in report.log_findings:
        click.echo(f"problem: a log line holds a canary: {finding}")
    if report.kept is not None:
        click.echo(f"the run's logs and data are kept in {report.kept}")
    click.echo(f"seed {report.seed}, {report.seconds} s")
    click.echo(verdict.line())
