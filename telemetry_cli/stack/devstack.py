"""Start and stop the whole local stack; used by ``telemetry dev``, pytest and the benchmarks.

A service whose address is already given (``DATABASE_URL``, ``PUBSUB_EMULATOR_HOST``,
``STORAGE_EMULATOR_HOST``) is used as it is; the others are started here. If anything fails
to start, everything already started is stopped before the error is raised, so nothing is left
half-running.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.errors import TelemetryError
from shared.pubsub import resources as names
from shared.settings import Settings, reset_settings
from shared.storage.hot.engine import dispose_engine, make_engine, run_migrations
from telemetry_cli.stack import gcs, pubsub
from telemetry_cli.stack.errors import StackError
from telemetry_cli.stack.functions import (
    FUNCTION_PREFIX,
    discover_functions,
    function_process,
    wait_function,
)
from telemetry_cli.stack.postgres import EmbeddedPostgres, default_data_dir
from telemetry_cli.stack.process import (
    ManagedProcess,
    StartInterrupted,
    free_port,
    http_ok,
    pid_alive,
    port_is_free,
    start_ticks,
    stop_leftover,
)
from telemetry_cli.stack.relay import PushRelay, sink_relay

logger = logging.getLogger(__name__)
PROJECT_DIR = Path(__file__).resolve().parents[2]
#: In the state directory: what a run has started so far (its process groups, its PostgreSQL).
OWNED_FILE = "owned.json"
#: Seconds between two restarts of the same crashed function.
RESTART_BACKOFF_S = 5.0


@dataclass
class StackOptions:
    """What to start and where."""

    project_dir: Path = PROJECT_DIR
    state_dir: Path | None = None
    project: str = "telemetry-local"
    bucket: str = "telemetry-local"
    allowed_origins: str = "http://localhost:8000,http://127.0.0.1:8000"
    database_url: str | None = None
    pubsub_emulator_host: str | None = None
    storage_emulator_host: str | None = None
    pubsub_port: int | None = None
    gcs_port: int | None = None
    function_ports: dict[str, int] = field(default_factory=dict)
    with_functions: bool = True
    persistent: bool = True
    #: Seconds between the local stack's snapshot runs (Cloud Scheduler's job in production);
    #: 0 or None: no schedule.
    snapshot_every: float | None = None
    #: Seconds between the anomaly function's evaluations (every 15 minutes in production);
    #: its materialization runs every tenth time. 0 or None: no schedule.
    anomaly_every: float | None = None
    #: Serve the live HTML report of the metrics on a local port.
    with_report: bool = False

    @classmethod
    def from_environment(cls, **overrides: Any) -> StackOptions:
        """Options that reuse services the environment already names."""
        env = os.environ
        values: dict[str, Any] = {
            "database_url": env.get("DATABASE_URL") or None,
            "pubsub_emulator_host": env.get("PUBSUB_EMULATOR_HOST") or None,
            "storage_emulator_host": env.get("STORAGE_EMULATOR_HOST") or None,
            "project": env.get("GOOGLE_CLOUD_PROJECT") or cls.project,
            "bucket": env.get("TELEMETRY_BUCKET") or cls.bucket,
            "allowed_origins": env.get("TELEMETRY_ALLOWED_ORIGINS") or cls.allowed_origins,
        }
        values.update(overrides)
        return cls(**values)


class DevStack:
    """The running stack; a context manager that stops everything on exit."""

    def __init__(self, options: StackOptions | None = None) -> None:
        self.options = options or StackOptions.from_environment()
        opts = self.options
        self.state_dir = opts.state_dir or opts.project_dir / ".telemetry"
        self.log_dir = self.state_dir / "logs"
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.processes: list[ManagedProcess] = []
        self.postgres: EmbeddedPostgres | None = None
        self.database_url = opts.database_url
        self.pubsub_emulator_host = opts.pubsub_emulator_host
        self.storage_emulator_host = opts.storage_emulator_host
        self.function_urls: dict[str, str] = {}
        #: The cold tier's local key-encryption key (Cloud KMS in production).
        self.archive_kek = f"file:{self.state_dir / 'archive-kek.key'}"
        self._otlp_token: str | None = None
        self.relay: PushRelay | None = None
        self._scheduler: threading.Thread | None = None
        self._anomaly_scheduler: threading.Thread | None = None
        self.report_server: Any = None
        self._replaying = threading.Lock()
        self._stopped = threading.Event()
        #: Set (by a signal handler) to end a start in progress at its next safe point.
        self.interrupt = threading.Event()
        self._restarted_at: dict[str, float] = {}

    # -- start -----------------------------------------------------------------------------
    def _check_port(self, port: int | None, what: str) -> int:
        if port is None:
            return free_port()
        if not port_is_free(port):
            raise StackError(f"port {port} for the {what} is already in use", str(self.log_dir))
        return port

    def _spawn(self, proc: ManagedProcess) -> ManagedProcess:
        self._checkpoint()
        proc.interrupt = self.interrupt
        self.processes.append(proc)
        proc.start()
        self._record_owned()
        return proc

    def _checkpoint(self) -> None:
        """Give up the start here when asked to stop (SIGTERM, Ctrl-C): a signal handler only
        sets :attr:`interrupt`, and the start ends at its next safe point, never inside the
        creation of a process it would then not know about."""
        if self.interrupt.is_set():
            raise StartInterrupted("stopping during start-up")

    @staticmethod
    def is_function(proc: ManagedProcess) -> bool:
        """Whether ``proc`` is one of the functions (which :meth:`supervise` restarts)."""
        return proc.name.startswith(FUNCTION_PREFIX)

    def supervise(self) -> list[str]:
        """Start again each function whose process exited, on its port, as Cloud Run starts a
        new instance after a crash; the names started again. A function that keeps dying is
        started at most once per :data:`RESTART_BACKOFF_S`."""
        restarted = []
        now = time.monotonic()
        for proc in self.processes:
            if self._stopped.is_set() or not self.is_function(proc) or proc.alive():
                continue
            if now - self._restarted_at.get(proc.name, float("-inf")) < RESTART_BACKOFF_S:
                continue
            self._restarted_at[proc.name] = now
            proc.start()
            self._record_owned()
            restarted.append(proc.name.removeprefix(FUNCTION_PREFIX))
            logger.warning(
                "function exited; started again",
                extra={"function": proc.name.removeprefix(FUNCTION_PREFIX)},
            )
        return restarted

    def _record_owned(self) -> None:
        """Write what this run started, as it starts it: a run killed at any moment (even
        before dev.json exists) leaves the list the next start stops (``_reap_leftovers``)."""
        owned = {
            "pid": os.getpid(),
            "groups": [[p.pid, start_ticks(p.pid)] for p in self.processes if p.pid],
            "postgres": None,
        }
        pid = self.postgres.pid() if self.postgres else None
        if pid:
            owned["postgres"] = [pid, start_ticks(pid)]
        path = self.state_dir / OWNED_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(owned), encoding="utf-8")
        tmp.replace(path)

    def start(self) -> dict[str, Any]:
        """Start what is missing, provision, migrate, start the functions; the endpoint map."""
        started = time.monotonic()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        info = self.info()
        info["startup_seconds"] = round(time.monotonic() - started, 2)
        return info

    def _start(self) -> None:
        opts = self.options
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._reap_leftovers()
        if not opts.persistent:
            self._tmp = tempfile.TemporaryDirectory(prefix="telemetry-stack-")
        data_root = Path(self._tmp.name) if self._tmp else self.state_dir / "data"
        pubsub_proc = gcs_proc = None
        if self.pubsub_emulator_host is None:
            port = self._check_port(opts.pubsub_port, "Pub/Sub emulator")
            pubsub_proc = self._spawn(
                pubsub.emulator_process(
                    port, data_root / "pubsub", self.log_dir / "pubsub-emulator.log"
                )
            )
            self.pubsub_emulator_host = f"127.0.0.1:{port}"
        if self.storage_emulator_host is None:
            port = self._check_port(opts.gcs_port, "GCS emulator")
            gcs_dir = None if not opts.persistent else data_root / "gcs"
            gcs_proc = self._spawn(
                gcs.emulator_process(port, self.log_dir / "gcs-emulator.log", gcs_dir)
            )
            self.storage_emulator_host = f"http://127.0.0.1:{port}"
        if self.database_url is None:
            pg_dir = (
                Path(self._tmp.name) / "pg"
                if self._tmp
                else default_data_dir(self.state_dir, "dev")
            )
            if self._tmp:
                Path(self._tmp.name).chmod(0o755)
            self.postgres = EmbeddedPostgres(pg_dir)
            self._checkpoint()
            self.postgres.start()
            self._record_owned()
            self.database_url = self.postgres.url
        if pubsub_proc is not None:
            pubsub.wait_emulator(pubsub_proc, int(self.pubsub_emulator_host.rsplit(":", 1)[1]))
        if gcs_proc is not None:
            gcs.wait_emulator(gcs_proc, int(self.storage_emulator_host.rsplit(":", 1)[1]))
        self._checkpoint()
        self._check_reachable()
        self.apply_env()
        self._migrate()
        self._checkpoint()
        functions = (
            discover_functions(opts.project_dir / "functions") if opts.with_functions else []
        )
        ports = {
            name: self._check_port(opts.function_ports.get(name), f"function {name}")
            for name in functions
        }
        self._provision()
        self._checkpoint()
        env = {**os.environ, **self.env()}
        procs = []
        for name in functions:
            proc = function_process(
                name, opts.project_dir / "functions", ports[name], self.log_dir / f"{name}.log", env
            )
            procs.append((name, self._spawn(proc)))
        for name, proc in procs:
            wait_function(proc, ports[name])
            self.function_urls[name] = f"http://127.0.0.1:{ports[name]}"
        if "snapshot" in self.function_urls and opts.snapshot_every:
            self._scheduler = threading.Thread(
                target=self._schedule,
                args=(self.function_urls["snapshot"], opts.snapshot_every, [b"{}"], "snapshot"),
                name="snapshot-schedule",
                daemon=True,
            )
            self._scheduler.start()
        if "anomaly" in self.function_urls and opts.anomaly_every:
            bodies = [b'{"action": "evaluate"}'] * 9 + [b'{"action": "materialize"}']
            self._anomaly_scheduler = threading.Thread(
                target=self._schedule,
                args=(self.function_urls["anomaly"], opts.anomaly_every, bodies, "anomaly"),
                name="anomaly-schedule",
                daemon=True,
            )
            self._anomaly_scheduler.start()
        if opts.with_report:
            from telemetry_cli.metrics.commands import render_live_report
            from telemetry_cli.metrics.live_report import ReportServer

            self.report_server = ReportServer(render_live_report).start()
        if "sink" in self.function_urls:
            self.relay = sink_relay(
                opts.project, self.function_urls["sink"], on_recovered=self._replay_exhausted
            ).start()

    def _schedule(self, url: str, every: float, bodies: list[bytes], what: str) -> None:
        """POST to a function every ``every`` seconds, as Cloud Scheduler does, cycling through
        ``bodies``."""
        turn = 0
        while not self._stopped.wait(every):
            body = bodies[turn % len(bodies)]
            turn += 1
            request = urllib.request.Request(  # noqa: S310 - the stack's own function
                url, data=body, headers={"Content-Type": "application/json"}, method="POST"
            )
            try:
                with urllib.request.urlopen(request, timeout=600) as answer:  # noqa: S310
                    json.loads(answer.read())
                logger.info("scheduled run", extra={"function": what})
            except (OSError, ValueError) as exc:
                logger.warning(
                    "scheduled run failed",
                    extra={"function": what, "error_type": type(exc).__name__},
                )

    def _replay_exhausted(self) -> None:
        """Bring back what Pub/Sub dead-lettered while the sink was failing (not poison)."""
        from shared.settings import get_settings
        from telemetry_cli.dlq import replay

        with self._replaying:
            try:
                replayed, _ = replay(get_settings(), exhausted_only=True)
            except Exception as exc:  # the next recovery tries again; `telemetry dlq` shows them
                logger.warning("exhausted replay failed", extra={"error_type": type(exc).__name__})
                return
        if replayed:
            logger.info("exhausted messages replayed", extra={"messages": replayed})

    def held_dead_letters(self, wait_s: float = 2.0) -> list[Any]:
        """What the DLQ hold subscription holds (:func:`shared.pubsub.dlq_hold.peek`), looked at
        while no replay of the relay runs: a replay leases the messages it skips until its scan
        ends, and a look meanwhile would miss them."""
        from shared.pubsub.dlq_hold import peek
        from shared.settings import get_settings

        with self._replaying:
            return peek(get_settings(), wait_s=wait_s)

    def _check_reachable(self) -> None:
        """Fail fast, naming the variable, when a given emulator address does not answer."""
        checks = [
            ("PUBSUB_EMULATOR_HOST", self.options.pubsub_emulator_host, "http://{}/"),
            ("STORAGE_EMULATOR_HOST", self.options.storage_emulator_host, "{}/storage/v1/b"),
        ]
        for name, value, template in checks:
            if not value:
                continue
            base = value.rstrip("/")
            if template.startswith("{}") and "://" not in base:
                base = f"http://{base}"
            if not http_ok(template.format(base)):
                raise StackError(
                    f"{name}={value} does not answer; start that emulator or unset {name}"
                )

    def _migrate(self) -> None:
        assert self.database_url is not None
        engine = make_engine(self.database_url, pool_size=1, max_overflow=0)
        try:
            run_migrations(engine)
        except TelemetryError as exc:
            log = str(self.postgres.log_file) if self.postgres else None
            raise StackError(f"database migrations failed: {exc}", log) from None
        finally:
            engine.dispose()

    def _provision(self) -> None:
        try:
            pubsub.provision(self.options.project)
        except Exception as exc:
            raise StackError(
                f"the Pub/Sub emulator at {self.pubsub_emulator_host} refused provisioning: "
                f"{type(exc).__name__}",
                str(self.log_dir / "pubsub-emulator.log"),
            ) from None
        try:
            gcs.provision(self.options.project, self.options.bucket)
        except Exception as exc:
            raise StackError(
                f"the GCS emulator at {self.storage_emulator_host} refused provisioning: "
                f"{type(exc).__name__}",
                str(self.log_dir / "gcs-emulator.log"),
            ) from None

    # -- state -----------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        """The environment a function or test needs to reach this stack."""
        env = {
            "TELEMETRY_ENV": "dev",
            "GOOGLE_CLOUD_PROJECT": self.options.project,
            "TELEMETRY_BUCKET": self.options.bucket,
            "TELEMETRY_TOPIC": names.TOPIC_EVENTS,
            "TELEMETRY_ALLOWED_ORIGINS": self.options.allowed_origins,
            "TELEMETRY_ARCHIVE_KEK": self.archive_kek,
            "TELEMETRY_OTLP_TOKENS": self.otlp_token,
            # Everything here comes from one address (loopback): the per-IP bucket is as wide
            # as the instance, or a newcomer's first burst of generated sessions would be
            # refused. Every other limit keeps its production default.
            "TELEMETRY_RATE_IP_EPS": str(int(Settings().telemetry_rate_instance_eps)),
            "TELEMETRY_RATE_IP_BURST": str(int(Settings().telemetry_rate_instance_burst)),
        }
        for key, value in (
            ("DATABASE_URL", self.database_url),
            ("PUBSUB_EMULATOR_HOST", self.pubsub_emulator_host),
            ("STORAGE_EMULATOR_HOST", self.storage_emulator_host),
        ):
            if value:
                env[key] = value
        return env

    @property
    def otlp_token(self) -> str:
        """The local OTLP bearer token: made once per state folder, kept across restarts so a
        configured exporter keeps working."""
        if self._otlp_token is None:
            import secrets

            path = self.state_dir / "otlp-token"
            if path.exists():
                self._otlp_token = path.read_text().strip()
            else:
                self._otlp_token = "dev-otlp-" + secrets.token_urlsafe(18)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(self._otlp_token + "\n")
                path.chmod(0o600)
        return self._otlp_token

    def apply_env(self) -> None:
        """Point this process at the stack (and forget settings read before)."""
        os.environ.update(self.env())
        reset_settings()
        dispose_engine()

    def info(self) -> dict[str, Any]:
        """What dev.json holds: every endpoint a script needs."""
        ingest = self.function_urls.get("ingest")
        return {
            "project": self.options.project,
            "ingest_url": f"{ingest}/v1/events" if ingest else None,
            "otlp_url": f"{ingest}/v1/traces" if ingest else None,
            "otlp_token": self.otlp_token,
            "snapshot_url": self.function_urls.get("snapshot"),
            "lifecycle_url": self.function_urls.get("lifecycle"),
            "anomaly_url": self.function_urls.get("anomaly"),
            "anomaly_every_s": self.options.anomaly_every if self._anomaly_scheduler else None,
            "report_url": self.report_server.url if self.report_server else None,
            "archive_kek": self.archive_kek,
            "snapshot_every_s": self.options.snapshot_every if self._scheduler else None,
            "functions": dict(self.function_urls),
            "database_url": self.database_url,
            "pubsub_emulator_host": self.pubsub_emulator_host,
            "storage_emulator_host": self.storage_emulator_host,
            "bucket": self.options.bucket,
            "topic": names.TOPIC_EVENTS,
            "sink_subscription": names.SUBSCRIPTION_SINK,
            "sink_delivery": "relay: pull from sink_subscription, POST the push body to the sink"
            if self.relay
            else None,
            "dlq_topic": names.TOPIC_DLQ,
            "allowed_origins": [
                o.strip() for o in self.options.allowed_origins.split(",") if o.strip()
            ],
            "log_dir": str(self.log_dir),
            "pid": os.getpid(),
            "child_pgids": [p.pid for p in self.processes if p.pid],
            "postgres_pid": self.postgres.pid() if self.postgres else None,
        }

    def write_info(self, info: dict[str, Any]) -> Path:
        """Write dev.json atomically (a reader never sees half a file)."""
        path = self.state_dir / "dev.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)
        return path

    def _reap_leftovers(self) -> None:
        """Stop what an earlier run from this state directory left running when it died without
        cleaning up (``kill -9``): its process groups and its PostgreSQL, each only if it is
        still the very process that run started."""
        owned_path = self.state_dir / OWNED_FILE
        info_path = self.state_dir / "dev.json"
        try:
            old = json.loads(owned_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        owner = old.get("pid")
        if owner and owner != os.getpid() and pid_alive(int(owner)):
            raise StackError(
                f"another `telemetry dev` (pid {owner}) runs from this state directory; "
                "stop it first",
                str(owned_path),
            )
        stopped = 0
        for pgid, ticks in old.get("groups", []):
            stopped += stop_leftover(int(pgid), ticks, signal.SIGTERM, 3.0, group=True)
        if old.get("postgres"):
            pid, ticks = old["postgres"]
            # SIGINT is PostgreSQL's fast shutdown (SIGTERM would wait for clients).
            stopped += stop_leftover(int(pid), ticks, signal.SIGINT, 5.0, group=False)
        if stopped:
            logger.warning("stopped what an earlier run left", extra={"processes": stopped})
        owned_path.unlink(missing_ok=True)
        info_path.unlink(missing_ok=True)

    # -- stop ------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop everything this stack started (functions first), then remove dev.json."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self.relay is not None:
            self.relay.stop()
        if self.report_server is not None:
            self.report_server.stop()
        dispose_engine()
        threads = [threading.Thread(target=p.stop, daemon=True) for p in reversed(self.processes)]
        for thread in threads:
            thread.start()
        if self.postgres is not None:
            self.postgres.stop()
        for thread in threads:
            thread.join(8)
        (self.state_dir / "dev.json").unlink(missing_ok=True)
        (self.state_dir / OWNED_FILE).unlink(missing_ok=True)
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                self._tmp.cleanup()

    def __enter__(self) -> DevStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def running_stack(options: StackOptions | None = None) -> Iterator[DevStack]:
    """Start a stack for the duration of a block (benchmarks, scripts)."""
    stack = DevStack(options)
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()
