"""The chaos run's faults, injected one after another at seeded random moments of the load.

Each fault is a real failure of a real process of the local stack:

* ``sink_kill``: ``kill -9`` of the sink while the relay has messages in flight to it; the
  stack starts it again, as Cloud Run starts a new instance;
* ``postgres_outage``: PostgreSQL stopped (fast shutdown) for a while, then started;
* ``pubsub_restart``: the Pub/Sub emulator killed and started again on its port;
* ``snapshot_kill``: ``kill -9`` of the snapshot function in the middle of a run (once its range
  is recorded as pending), then a rerun;
* ``erasure``: the erased person's erasure, once everything they sent is accepted;
* ``poison``: undecodable messages published straight to the events topic, which the sink must
  dead-letter with their reason.

Two more are shapes of the load (client clocks skewed, events 48 h late), and one is a property
of the relay for the whole run: a share of messages delivered three times.

The emulator keeps its messages in memory, so a restart loses whatever it holds; Pub/Sub itself
stores every acknowledged publish durably. The fault it stands for is Pub/Sub refusing
publishes and breaking the subscriber's stream, so the controller restarts the emulator when
its backlog is drained: it holds the ledger proxy's door (clients get 503 and retry), waits
until every accepted event is stored, records what sits in the dead-letter hold, kills the
emulator and opens the door again while it is down, so ingest answers 503 until it is back.
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from telemetry_cli.stack import pubsub
from telemetry_cli.stack.devstack import DevStack
from telemetry_cli.stack.functions import FUNCTION_PREFIX
from telemetry_cli.stack.process import ManagedProcess

logger = logging.getLogger(__name__)

FAULTS = (
    "sink_kill",
    "postgres_outage",
    "pubsub_restart",
    "snapshot_kill",
    "erasure",
    "poison",
)

#: Faults that need the rest of the stack healthy, so they take turns: the emulator restart
#: waits for the hot tier to hold every accepted event (impossible while PostgreSQL is down),
#: and the snapshot must get far enough to have a range pending.
EXCLUSIVE = frozenset({"postgres_outage", "pubsub_restart", "snapshot_kill"})


@dataclass
class FaultLog:
    """What was injected, when (seconds into the load), and what it found."""

    entries: list[tuple[float, str, str]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def add(self, fault: str, detail: str) -> None:
        at = time.monotonic() - self.started
        self.entries.append((at, fault, detail))
        logger.info("chaos fault", extra={"fault": fault, "at_s": round(at, 1)})


def post_json(url: str, body: dict[str, Any], timeout: float = 600) -> tuple[int, Any]:
    """POST a JSON body to a function of the stack; (status, answer) with status 0 on no answer."""
    request = urllib.request.Request(  # noqa: S310 - the stack's own function
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            return int(answer.status), json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, None
    except OSError:
        return 0, None


def post_until_done(url: str, body: dict[str, Any], attempts: int = 60) -> tuple[int, Any]:
    """POST to a private function again while it answers 503 or 409 or nothing (PostgreSQL
    down or just back, a run already under way), as Cloud Scheduler retries; the last answer."""
    status, answer = 0, None
    for _ in range(attempts):
        status, answer = post_json(url, body)
        if status not in (0, 409, 503):
            break
        time.sleep(2.0)
    return status, answer


def function_process(stack: DevStack, name: str) -> ManagedProcess:
    """The managed process of one function of the stack."""
    for proc in stack.processes:
        if proc.name == f"{FUNCTION_PREFIX}{name}":
            return proc
    raise LookupError(f"function {name} is not running in this stack")


def kill_9(proc: ManagedProcess) -> int | None:
    """``kill -9`` of a process group; the pid killed."""
    pid = proc.pid
    if pid is None or not proc.alive():
        return None
    os.killpg(pid, signal.SIGKILL)
    if proc.proc is not None:
        proc.proc.wait(10)
    return pid


class Supervisor:
    """Starts crashed functions again every half second (what ``telemetry dev`` does)."""

    def __init__(self, stack: DevStack) -> None:
        self.stack = stack
        self.stop = threading.Event()
        self.restarted: list[str] = []
        self._thread = threading.Thread(target=self._run, name="chaos-supervisor", daemon=True)

    def start(self) -> Supervisor:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self.stop.wait(0.5):
            self.restarted += self.stack.supervise()


@dataclass
class FaultSettings:
    """How long the outages last."""

    postgres_outage_s: float = 60.0
    pubsub_down_s: float = 5.0
    poison_messages: int = 3
    duplicate_share: float = 0.05


class FaultController:
    """Runs each fault once, in a seeded random order, at seeded random moments."""

    def __init__(
        self,
        stack: DevStack,
        seed: int,
        settings: FaultSettings,
        hold: Callable[[], Any],
        drained: Callable[[], bool],
        capture_dead_letters: Callable[[], None],
        erase: Callable[[], None],
        log: FaultLog,
    ) -> None:
        self.stack = stack
        self.rng = random.Random(seed)  # noqa: S311 - a replayable schedule
        self.settings = settings
        self.hold = hold
        self.drained = drained
        self.capture_dead_letters = capture_dead_letters
        self.erase = erase
        self.log = log
        self.order = list(FAULTS)
        self.rng.shuffle(self.order)
        self.poison_ids: list[str] = []
        self.snapshot_runs: list[int] = []

    def schedule(self) -> list[tuple[float, str]]:
        """At which share of the load each fault starts: one fault per equal slot of 5-85 %."""
        slot = 0.8 / len(self.order)
        return [
            (0.05 + slot * i + self.rng.uniform(0.1, 0.9) * slot, fault)
            for i, fault in enumerate(self.order)
        ]

    def run(self, done_share: Callable[[], float], stop: threading.Event) -> None:
        """Inject every fault when the load reaches its share, each in its own thread, so
        faults overlap as they would in life; those that need the stack otherwise healthy
        (:data:`EXCLUSIVE`) take turns. Returns when all have ended."""
        turns = threading.Lock()

        def inject(share: float, fault: str) -> None:
            while done_share() < share and not stop.wait(0.05):
                pass
            if stop.is_set():
                return
            if fault in EXCLUSIVE:
                with turns:
                    getattr(self, fault)()
            else:
                getattr(self, fault)()

        threads = [
            threading.Thread(target=inject, args=(share, fault), name=f"fault-{fault}")
            for share, fault in self.schedule()
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    # -- the faults ------------------------------------------------------------------------
    def sink_kill(self) -> None:
        relay = self.stack.relay
        deadline = time.monotonic() + 10
        while relay is not None and relay.in_flight == 0 and time.monotonic() < deadline:
            time.sleep(0.005)
        in_flight = relay.in_flight if relay else 0
        pid = kill_9(function_process(self.stack, "sink"))
        self.log.add("sink_kill", f"kill -9 of the sink (pid {pid}), {in_flight} in flight")

    def postgres_outage(self) -> None:
        postgres = self.stack.postgres
        if postgres is None:
            self.log.add("postgres_outage", "skipped: PostgreSQL is not the stack's own")
            return
        postgres.stop()
        self.log.add(
            "postgres_outage", f"PostgreSQL stopped for {self.settings.postgres_outage_s} s"
        )
        time.sleep(self.settings.postgres_outage_s)
        postgres.start()
        self.log.add("postgres_outage", "PostgreSQL started again")

    def pubsub_restart(self) -> None:
        emulator = next((p for p in self.stack.processes if p.name == "pubsub-emulator"), None)
        if emulator is None:
            self.log.add("pubsub_restart", "skipped: the emulator is not the stack's own")
            return
        port = int(str(self.stack.pubsub_emulator_host).rsplit(":", 1)[1])
        held = time.monotonic()
        with self.hold():
            deadline = time.monotonic() + 300
            while not self.drained() and time.monotonic() < deadline:
                time.sleep(0.5)
            self.capture_dead_letters()
            kill_9(emulator)
        self.log.add(
            "pubsub_restart",
            f"emulator killed after a {time.monotonic() - held:.1f} s drain (ingest held); "
            f"down for {self.settings.pubsub_down_s} s",
        )
        time.sleep(self.settings.pubsub_down_s)
        held = time.monotonic()
        with self.hold():
            emulator.start()
            pubsub.wait_emulator(emulator, port)
            pubsub.provision(self.stack.options.project)
        self.log.add(
            "pubsub_restart",
            f"emulator started again and provisioned ({time.monotonic() - held:.1f} s held)",
        )

    def snapshot_kill(self) -> None:
        """Kill the snapshot while a range is pending (its export or upload under way); a run
        that ends before one is seen is tried again, up to five times, as new rows arrive."""
        url = self.stack.function_urls["snapshot"]
        for attempt in range(1, 6):
            answered: list[int] = []

            def request(answered: list[int] = answered) -> None:
                answered.append(post_json(url, {})[0])

            thread = threading.Thread(target=request, daemon=True)
            thread.start()
            if self._wait_pending_snapshot(thread):
                time.sleep(self.rng.uniform(0.0, 0.05))
                pid = kill_9(function_process(self.stack, "snapshot"))
                thread.join(30)
                self.log.add(
                    "snapshot_kill",
                    f"kill -9 of the snapshot (pid {pid}) with a range pending, attempt "
                    f"{attempt}; it answered {answered or 'nothing'}",
                )
                break
            thread.join(30)
            time.sleep(1.0)
        else:
            self.log.add("snapshot_kill", "no run was caught with a range pending in 5 tries")
        self._wait_function("snapshot", 30)
        status, _ = post_until_done(url, {})
        self.snapshot_runs.append(status)
        self.log.add("snapshot_kill", f"snapshot run again: {status}")

    def _wait_pending_snapshot(self, run: threading.Thread) -> bool:
        """Whether a range of a table turned pending while ``run`` lasted."""
        from sqlalchemy import text

        from shared.storage.hot.engine import make_engine

        engine = make_engine(str(self.stack.database_url), pool_size=1, max_overflow=0)
        query = text("SELECT 1 FROM snapshot_runs WHERE state = 'pending' LIMIT 1")
        try:
            with engine.connect() as conn:
                while run.is_alive():
                    if conn.execute(query).first() is not None:
                        return True
                    conn.rollback()
                    time.sleep(0.002)
        finally:
            engine.dispose()
        return False

    def _wait_function(self, name: str, timeout_s: float) -> None:
        from telemetry_cli.stack.process import http_ok

        url = self.stack.function_urls[name]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if function_process(self.stack, name).alive() and http_ok(url):
                return
            time.sleep(0.2)

    def erasure(self) -> None:
        self.erase()

    def poison(self) -> None:
        from google.cloud import pubsub_v1  # type: ignore[attr-defined]

        from shared.pubsub import resources as names

        publisher = pubsub_v1.PublisherClient()
        topic = publisher.topic_path(self.stack.options.project, names.TOPIC_EVENTS)
        try:
            for index in range(self.settings.poison_messages):
                future = publisher.publish(
                    topic, b"chaos: not a message body %d" % index, chaos_poison=str(index)
                )
                self.poison_ids.append(str(future.result(timeout=30)))
        finally:
            publisher.transport.close()
        self.log.add("poison", f"{len(self.poison_ids)} undecodable messages published")
