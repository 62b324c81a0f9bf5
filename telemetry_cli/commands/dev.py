"""``telemetry dev``: the whole pipeline on this machine until Ctrl-C (what ``make dev`` runs)."""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType
from typing import Any

import click

from shared.errors import TelemetryError
from telemetry_cli.commands import fail


@click.command()
@click.option("--pubsub-port", type=int, help="Port of the Pub/Sub emulator (default: any free).")
@click.option("--gcs-port", type=int, help="Port of the GCS emulator (default: any free).")
@click.option("--ingest-port", type=int, help="Port of the ingest function (default: any free).")
@click.option("--sink-port", type=int, help="Port of the sink function (default: any free).")
@click.option("--state-dir", type=click.Path(path_type=Path), help="Where dev.json and logs go.")
@click.option("--demo", is_flag=True, help="Send synthetic events to ingest every few seconds.")
@click.option("--no-functions", is_flag=True, help="Start the services only.")
@click.option(
    "--snapshot-every",
    type=float,
    default=120.0,
    show_default=True,
    help="Seconds between snapshot runs into the warm tier (0: none).",
)
@click.option(
    "--anomaly-every",
    type=float,
    default=60.0,
    show_default=True,
    help="Seconds between metric evaluations by the anomaly function (0: none).",
)
@click.option("--no-report", is_flag=True, help="Do not serve the live metrics report.")
def dev(
    pubsub_port: int | None,
    gcs_port: int | None,
    ingest_port: int | None,
    sink_port: int | None,
    state_dir: Path | None,
    demo: bool,
    no_functions: bool,
    snapshot_every: float,
    anomaly_every: float,
    no_report: bool,
) -> None:
    """Run the whole pipeline locally until Ctrl-C or SIGTERM."""
    from telemetry_cli.stack.devstack import DevStack, StackOptions
    from telemetry_cli.stack.process import StartInterrupted

    ports = {k: v for k, v in (("ingest", ingest_port), ("sink", sink_port)) if v}
    options = StackOptions.from_environment(
        pubsub_port=pubsub_port,
        gcs_port=gcs_port,
        function_ports=ports,
        state_dir=state_dir,
        with_functions=not no_functions,
        snapshot_every=snapshot_every or None,
        anomaly_every=anomaly_every or None,
        with_report=not no_report and not no_functions,
    )
    stop = threading.Event()
    stack = DevStack(options)
    received: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        # Only flags: a start in progress ends at its next safe point (never half way through
        # creating a process), stopping what it started.
        received.append(signum)
        stop.set()
        stack.interrupt.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    click.echo("starting the local stack…", err=True)
    try:
        info = stack.start()
    except TelemetryError as exc:
        fail(exc)
        return
    except StartInterrupted:
        stack.stop()  # idempotent: the start already stopped what it had started
        click.echo("stopped during start-up", err=True)
        sys.exit(128 + (received[0] if received else signal.SIGTERM))
    try:
        path = stack.write_info(info)
        _print_endpoints(info, path)
        if demo:
            threading.Thread(target=_demo_loop, args=(info, stop), daemon=True).start()
        while not stop.wait(1.0):
            for name in stack.supervise():
                click.echo(f"warning: function {name} exited; started it again", err=True)
                stack.write_info(stack.info())
            for proc in stack.processes:
                if not proc.alive() and not stop.is_set() and not stack.is_function(proc):
                    click.echo(f"warning: {proc.name} exited; see {proc.log_file}", err=True)
                    stack.processes.remove(proc)
                    break
    finally:
        click.echo("stopping…", err=True)
        stack.stop()
        click.echo("stopped", err=True)


def _print_endpoints(info: dict[str, Any], path: Path) -> None:
    click.echo(f"local stack ready in {info['startup_seconds']} s")
    click.echo(f"  PostgreSQL         {info['database_url']}")
    click.echo(f"  Pub/Sub emulator   {info['pubsub_emulator_host']}")
    click.echo(f"  GCS emulator       {info['storage_emulator_host']}  bucket {info['bucket']}")
    for name, url in sorted(info["functions"].items()):
        click.echo(f"  function {name:<9} {url}")
    if info.get("snapshot_every_s"):
        click.echo(
            f"  snapshot           every {info['snapshot_every_s']:g} s into gs://{info['bucket']}/analytics/"
        )
    if info.get("otlp_url"):
        click.echo(
            f"  OTLP traces        {info['otlp_url']}  "
            f"(Authorization: Bearer {info['otlp_token']}; GenAI spans become llm.call rows)"
        )
    if info.get("lifecycle_url"):
        click.echo(
            '  lifecycle          POST {"action": "retention"|"erase"…} to '
            f"{info['lifecycle_url']}, or `telemetry retention`, `telemetry erase --user-id ID`"
        )
    if info.get("anomaly_url"):
        every = info.get("anomaly_every_s")
        schedule = f"evaluated every {every:g} s; " if every else ""
        click.echo(
            f"  anomaly            {schedule}alerts on the telemetry-alerts topic"
            " (and TELEMETRY_ALERT_WEBHOOK_URL if set); `telemetry metrics check`"
        )
    if info.get("report_url"):
        click.echo(f"  metrics report     {info['report_url']}  (the last 7 days, live)")
    if not info["functions"]:
        click.echo("  (no functions under functions/ yet)")
    click.echo(f"  logs               {info['log_dir']}")
    click.echo(f"  endpoints written  {path}")
    click.echo("press Ctrl-C to stop")


def _demo_loop(info: dict[str, Any], stop: threading.Event) -> None:
    from telemetry_cli.generator import EventGenerator

    url = info.get("ingest_url")
    if not url:
        click.echo("demo: no ingest function yet; nothing to send", err=True)
        return
    origin = info["allowed_origins"][0] if info["allowed_origins"] else None
    generator = EventGenerator(seed=int(time.time()))
    sent = 0
    while not stop.wait(2.0):
        for body in generator.envelopes(sessions=1):
            request = urllib.request.Request(  # noqa: S310 - local URL from dev.json
                url,
                data=json.dumps(body).encode(),
                headers={
                    "Content-Type": "text/plain;charset=UTF-8",
                    **({"Origin": origin} if origin else {}),
                },
            )
            try:
                with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
                    answer = json.loads(response.read())
                sent += int(answer.get("accepted", 0))
            except (OSError, ValueError, urllib.error.HTTPError) as exc:
                click.echo(f"demo: send failed: {exc}", err=True)
        click.echo(f"demo: {sent} events accepted so far", err=True)
