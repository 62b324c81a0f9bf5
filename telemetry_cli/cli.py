"""The ``telemetry`` command line: the local stack, the registry, migrations, synthetic data."""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import click

from shared.errors import TelemetryError
from shared.observability.log import configure_logging
from shared.settings import reset_settings
from shared.storage.layout import EVENT_TABLES, TIERS
from telemetry_cli.canary import canary_command
from telemetry_cli.capacity import capacity
from telemetry_cli.chaos.command import chaos
from telemetry_cli.lifecycle import COMMANDS as LIFECYCLE_COMMANDS
from telemetry_cli.metrics.commands import metrics, report, reprice


def _fail(exc: TelemetryError) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(1)


#: Commands that reach the pipeline's services (the others are local tooling).
SERVICE_COMMANDS = frozenset(
    {
        "migrate",
        "dlq",
        "sampling",
        "snapshot",
        "query",
        "retention",
        "archive",
        "erase",
        "audit",
        "metrics",
        "report",
        "reprice",
        "canary",
    }
)


class TelemetryGroup(click.Group):
    """The command group: service commands find the local stack, and service failures print
    one line that names what to set, never a traceback."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if name in SERVICE_COMMANDS:
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
            _fail(exc)
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


@cli.command()
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
        _fail(exc)
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


@cli.command()
@click.option(
    "--grant-to",
    "grant_to",
    multiple=True,
    help="Database role (a function's IAM user) that writes events.",
)
@click.option(
    "--grant-lifecycle",
    "grant_lifecycle_to",
    multiple=True,
    help="Database role of the lifecycle function (it drops partitions and deletes rows).",
)
@click.option(
    "--grant-anomaly",
    "grant_anomaly_to",
    multiple=True,
    help="Database role of the anomaly function (reads all, keeps alert state, metric views).",
)
def migrate(
    grant_to: tuple[str, ...],
    grant_lifecycle_to: tuple[str, ...],
    grant_anomaly_to: tuple[str, ...],
) -> None:
    """Apply the database migrations and create the partitions around today (idempotent)."""
    from shared.storage.hot.engine import (
        get_engine,
        grant_anomaly,
        grant_lifecycle,
        grant_writer,
        run_migrations,
    )
    from shared.storage.warm.catalog import WRITER_UPDATES

    try:
        engine = get_engine()
        run_migrations(engine)
        for role in grant_to:
            grant_writer(engine, role, WRITER_UPDATES)
        for role in grant_lifecycle_to:
            grant_lifecycle(engine, role)
        for role in grant_anomaly_to:
            grant_anomaly(engine, role)
    except TelemetryError as exc:
        _fail(exc)
    click.echo("migrations applied" + (f"; writers: {', '.join(grant_to)}" if grant_to else ""))


@cli.group()
def registry() -> None:
    """The event registry: lint, docs, release."""


@registry.command("lint")
@click.argument("path", required=False, type=click.Path(path_type=Path))
def registry_lint(path: Path | None) -> None:
    """Check the registry's rules; exits 1 and names file and line for each problem."""
    from telemetry_cli.registry.lint import lint_file

    problems = lint_file(path)
    for problem in problems:
        click.echo(str(problem), err=True)
    if problems:
        sys.exit(1)
    click.echo("registry ok")


DOCS_PATH = Path(__file__).resolve().parents[1] / "docs" / "events.md"


@registry.command("docs")
@click.option("--check", is_flag=True, help="Fail if docs/events.md differs from the registry.")
def registry_docs(check: bool) -> None:
    """Write docs/events.md from the registry (or check that it is current)."""
    from shared.contract.registry import default_registry
    from telemetry_cli.registry.docs import render_markdown

    try:
        text = render_markdown(default_registry())
    except TelemetryError as exc:
        _fail(exc)
        return
    if check:
        current = DOCS_PATH.read_text(encoding="utf-8") if DOCS_PATH.exists() else ""
        if current != text:
            click.echo(
                f"{DOCS_PATH} has drifted from the registry; run `telemetry registry docs`",
                err=True,
            )
            sys.exit(1)
        click.echo("docs/events.md is current")
        return
    DOCS_PATH.parent.mkdir(parents=True, exist_ok=True)
    DOCS_PATH.write_text(text, encoding="utf-8")
    click.echo(f"wrote {DOCS_PATH}")


OPENAPI_DOC_PATH = Path(__file__).resolve().parents[1] / "docs" / "openapi.json"


@registry.command("openapi")
@click.option("--check", is_flag=True, help="Fail if docs/openapi.json differs from the registry.")
def registry_openapi(check: bool) -> None:
    """Write ingest's OpenAPI 3.1 document (docs/openapi.json), or check that it is current;
    ingest serves the same at GET /v1/openapi.json."""
    from shared.contract.openapi import openapi_document
    from shared.contract.registry import default_registry
    from telemetry_cli.metrics.commands import write_or_check

    text = json.dumps(openapi_document(default_registry()), indent=2, sort_keys=True) + "\n"
    write_or_check({OPENAPI_DOC_PATH: text}, check, "telemetry registry openapi")


TS_PATH = Path(__file__).resolve().parents[1] / "clients" / "js" / "src" / "events.ts"


@registry.command("ts")
@click.option(
    "--check", is_flag=True, help="Fail if clients/js/src/events.ts differs from the registry."
)
def registry_ts(check: bool) -> None:
    """Write the JS client's event types (clients/js/src/events.ts) from the registry."""
    from shared.contract.registry import default_registry
    from telemetry_cli.registry.typescript import render_typescript

    text = render_typescript(default_registry())
    if check:
        current = TS_PATH.read_text(encoding="utf-8") if TS_PATH.exists() else ""
        if current != text:
            click.echo(
                f"{TS_PATH} has drifted from the registry; run `telemetry registry ts`", err=True
            )
            sys.exit(1)
        click.echo("clients/js/src/events.ts is current")
        return
    TS_PATH.write_text(text, encoding="utf-8")
    click.echo(f"wrote {TS_PATH}")


@registry.command("release")
def registry_release() -> None:
    """Pin every unreleased (name, version) in released.json; they may not change after."""
    from shared.contract.registry import default_registry
    from telemetry_cli.registry.lint import release_all

    added = release_all(default_registry())
    click.echo("released: " + (", ".join(added) if added else "nothing new"))


@cli.command()
@click.option("--sessions", default=10, show_default=True, help="Sessions to generate.")
@click.option("--seed", default=0, show_default=True, help="Random seed (same seed, same data).")
@click.option("--batch-size", default=50, show_default=True, help="Events per beacon body.")
@click.option("--out", type=click.File("w"), default="-", help="Where to write JSON lines.")
def generate(sessions: int, seed: int, batch_size: int, out: Any) -> None:
    """Write synthetic beacon bodies (one JSON object per line), driven by the registry."""
    from telemetry_cli.generator import EventGenerator

    generator = EventGenerator(seed=seed)
    for body in generator.envelopes(sessions, batch_size=batch_size):
        out.write(json.dumps(body) + "\n")


@cli.group()
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


@cli.group(invoke_without_command=True)
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
TABLE_OPTION = click.option(
    "--table",
    "tables",
    multiple=True,
    type=click.Choice(list(EVENT_TABLES)),
    help="Only this table (repeatable; default both).",
)


@cli.group(invoke_without_command=True)
@TABLE_OPTION
@click.option("--dry-run", is_flag=True, help="Print what would be written, write nothing.")
@click.pass_context
def snapshot(ctx: click.Context, tables: tuple[str, ...], dry_run: bool) -> None:
    """Write new hot-tier rows to the warm tier as verified Parquet (what the function runs)."""
    if ctx.invoked_subcommand is not None:
        return
    from tqdm import tqdm

    from shared.contract.registry import default_registry
    from shared.settings import get_settings
    from shared.storage.gcs import get_storage_client
    from shared.storage.hot.engine import get_engine
    from shared.storage.warm.snapshot import Snapshotter

    settings = get_settings()
    bucket = get_storage_client(settings).bucket(settings.telemetry_bucket)
    with tqdm(desc="snapshot", unit="rows", file=sys.stderr, disable=None) as bar:
        files = 0

        def progress(table: str, rows: int) -> None:
            nonlocal files
            files += 1
            bar.set_postfix(table=table, files=files)
            bar.update(rows)

        runs = Snapshotter(settings, get_engine(), bucket, default_registry(), progress).run(
            tables or None, dry_run=dry_run
        )
    for run in runs:
        verb = "would write" if dry_run else "wrote"
        click.echo(
            f"{run.table}: {verb} {run.rows} rows in "
            f"{len(run.planned) if dry_run else len(run.files)} files "
            f"(range {run.seq_lo}..{run.seq_hi}{', resumed' if run.resumed else ''})"
        )
        for day, rows in run.planned if dry_run else []:
            click.echo(f"  {day.isoformat()}  {rows} rows")
        for f in run.files:
            click.echo(f"  {f.object_name}  {f.rows} rows  {f.size} bytes")


@snapshot.command("verify")
@click.option(
    "--date", "day", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Only this day."
)
def snapshot_verify(day: datetime | None) -> None:
    """Compare per-day counts and digests of the hot and warm tiers; exit 1 on any mismatch."""
    from shared.settings import get_settings
    from shared.storage.gcs import get_storage_client
    from shared.storage.hot.engine import get_engine
    from shared.storage.warm.reconcile import reconcile

    settings = get_settings()
    bucket = get_storage_client(settings).bucket(settings.telemetry_bucket)
    checks, mismatches = reconcile(get_engine(), bucket, day.date() if day else None)
    for check in checks:
        click.echo(
            f"{check.table:17} {check.day.isoformat()}  hot {check.hot_rows:>9}  "
            f"warm {check.warm_rows:>9}  files {check.files}"
        )
    for mismatch in mismatches:
        click.echo(f"mismatch: {mismatch}", err=True)
    click.echo(f"{len(checks)} table-days compared, {len(mismatches)} mismatches")
    if mismatches:
        sys.exit(1)


@snapshot.command("compact")
@TABLE_OPTION
@click.option(
    "--date", "day", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Only this day."
)
def snapshot_compact(tables: tuple[str, ...], day: datetime | None) -> None:
    """Merge each day's small warm files into one (verified), then delete long-retired files."""
    from shared.settings import get_settings
    from shared.storage.gcs import get_storage_client
    from shared.storage.hot.engine import get_engine
    from shared.storage.warm.compaction import compact, delete_retired

    settings = get_settings()
    bucket = get_storage_client(settings).bucket(settings.telemetry_bucket)
    engine = get_engine()
    for table in tables or EVENT_TABLES:
        for merge in compact(settings, engine, bucket, table, day.date() if day else None):
            click.echo(
                f"{table} {merge.day.isoformat()}: {len(merge.inputs)} files -> "
                f"{merge.object_name} ({merge.rows} rows, {merge.bytes} bytes)"
            )
    click.echo(f"deleted {delete_retired(engine, bucket)} retired files past their grace period")


@cli.command()
@click.argument("sql")
@click.option(
    "--format",
    "output",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
)
@click.option(
    "--tier",
    type=click.Choice(TIERS),
    default="both",
    show_default=True,
    help="both: warm files plus hot rows past the watermark, no row twice.",
)
@click.option(
    "--engine",
    type=click.Choice(["duckdb", "bigquery"]),
    default="duckdb",
    show_default=True,
    help="bigquery: the same SQL, transpiled, on the external tables (warm tier only).",
)
@click.option("--dataset", default="telemetry", show_default=True, help="BigQuery dataset.")
def query(sql: str, output: str, tier: str, engine: str, dataset: str) -> None:
    """Run SQL over telemetry_events and api_calls_log, across the hot and warm tiers."""
    from shared.contract.registry import default_registry
    from shared.settings import get_settings
    from shared.storage.hot.engine import get_engine
    from shared.storage.warm.query import run_duckdb
    from telemetry_cli.bigquery import run_bigquery

    settings = get_settings()
    if engine == "bigquery":
        result = run_bigquery(settings, sql, dataset)
    else:
        result = run_duckdb(settings, get_engine(), default_registry(), sql, tier)  # type: ignore[arg-type]
    _print_result(result.columns, result.rows, output)


def _print_result(columns: list[str], rows: list[tuple[Any, ...]], output: str) -> None:
    if output == "json":
        click.echo(json.dumps([dict(zip(columns, row, strict=True)) for row in rows], default=str))
        return
    if output == "csv":
        import csv
        import io

        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
        click.echo(buffer.getvalue(), nl=False)
        return
    cells = [columns, *[["" if v is None else str(v) for v in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    for index, row in enumerate(cells):
        click.echo("  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)))
        if index == 0:
            click.echo("  ".join("-" * width for width in widths))
    click.echo(f"({len(rows)} rows)")


@cli.command("check")
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


@cli.group()
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


for _command in LIFECYCLE_COMMANDS:
    cli.add_command(_command)
cli.add_command(capacity)
cli.add_command(chaos)
cli.add_command(canary_command())
cli.add_command(metrics)
cli.add_command(report)
cli.add_command(reprice)


def main() -> None:
    """Console-script entry point."""
    cli()


if __name__ == "__main__":  # pragma: no cover
    main()
