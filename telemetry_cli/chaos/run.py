"""``telemetry chaos``: load, faults and a ledger, then the reconciliation of every tier.

It starts a stack of its own (in a temporary folder: its PostgreSQL, its emulators, every
function), puts the ledger proxy in front of ingest, runs the load through the three clients
while the fault controller injects each fault once at a seeded random share of the load, waits
for the pipeline to drain, runs a final snapshot, and reconciles. The seed is printed first, so
a failing run can be replayed with ``--seed``.
"""

from __future__ import annotations

import functools
import logging
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from telemetry_cli.chaos.check import DeadLetters, Verdict, hot_counts, reconcile, warm_counts
from telemetry_cli.chaos.faults import (
    FaultController,
    FaultLog,
    FaultSettings,
    Supervisor,
    post_until_done,
)
from telemetry_cli.chaos.ledger import Ledger, LedgerProxy
from telemetry_cli.chaos.load import (
    BackendLoad,
    BeaconLoad,
    BrowserLoad,
    LoadCounts,
    LoadPlan,
    PageServer,
)
from telemetry_cli.logscan import Canary
from telemetry_cli.stack.devstack import DevStack, StackOptions

logger = logging.getLogger(__name__)


@dataclass
class ChaosOptions:
    """One run: how much load, which seed, how long the outages last."""

    events: int = 100_000
    seed: int | None = None
    faults: FaultSettings = field(default_factory=FaultSettings)
    browser_share: float = 0.05
    backend_share: float = 0.1
    drain_timeout_s: float = 600.0
    #: Give up retrying a batch this long after the load ended (a client that never gets an
    #: answer: its events are simply not accepted, so not in the ledger).
    give_up_after_s: float = 300.0


@dataclass
class ChaosReport:
    """What a run found."""

    seed: int
    verdict: Verdict
    faults: FaultLog
    counts: LoadCounts
    ledger: Ledger
    duplicated_deliveries: int
    restarted: list[str]
    seconds: float
    #: Log lines that held a canary (``telemetry logs scan``'s findings).
    log_findings: list[str] = field(default_factory=list)
    #: The run's folder, kept (logs, data) when the run was not clean.
    kept: Path | None = None


Progress = Callable[[str], None]


class ChaosRun:
    """The run's parts, wired together."""

    def __init__(self, options: ChaosOptions, progress: Progress) -> None:
        self.options = options
        self.seed = (
            options.seed if options.seed is not None else random.SystemRandom().randrange(10**9)
        )
        self.progress = progress
        self.ledger = Ledger()
        self.counts = LoadCounts()
        self.dead_letters = DeadLetters()
        self.plan = LoadPlan(
            events=options.events,
            seed=self.seed,
            browser_share=options.browser_share,
            backend_share=options.backend_share,
        )
        self.erasure_answer: dict[str, Any] | None = None
        self._stored: set[str] = set()

    # -- helpers the faults call -----------------------------------------------------------
    def drained(self) -> bool:
        """True when every accepted event (but the erased person's) is stored in the hot tier."""
        from shared.storage.hot.engine import get_engine

        pending = [
            e
            for e in self.ledger.snapshot()
            if e.event_id not in self._stored and e.user_id != self.plan.erased_user
        ]
        if not pending:
            return True
        try:
            found = hot_counts(get_engine(), pending)
        except Exception:  # PostgreSQL restarting: not drained yet
            return False
        self._stored.update(found)
        return len(found) == len(pending)

    def capture_dead_letters(self, stack: DevStack) -> None:
        """Record what the hold subscription holds (before the emulator forgets it)."""
        self.dead_letters.add(stack.held_dead_letters())

    def erase(self, stack: DevStack, beacons: BeaconLoad) -> None:
        """Erase the person whose sessions ended; their later rows are dropped by the trigger."""
        beacons.erased_done.wait(600)
        status, answer = post_until_done(
            stack.function_urls["lifecycle"],
            {"action": "erase", "user_ids": [self.plan.erased_user]},
        )
        self.erasure_answer = answer
        self._fault_log.add("erasure", f"erasure of the erased person answered {status}")

    def _done_share(self) -> float:
        """How much of the load the clients have made so far (0 to 1)."""
        return self.counts.made / max(1, self.plan.events)

    # -- the run ---------------------------------------------------------------------------
    def run(self) -> ChaosReport:
        """Start a stack, load it under faults, reconcile; the stack is always stopped. The
        stack's folder (logs) is removed after a clean run and kept after any other."""
        from telemetry_cli.logscan import scan

        started = time.monotonic()
        self.progress(f"chaos: seed {self.seed}, {self.options.events} events")
        folder = Path(tempfile.mkdtemp(prefix="telemetry-chaos-"))
        pages = PageServer()
        stack = DevStack(
            StackOptions(
                state_dir=folder / "state",
                persistent=False,
                allowed_origins=f"{pages.origin},http://127.0.0.1",
            )
        )
        try:
            info = stack.start()
            self.progress(f"stack up in {info['startup_seconds']} s; logs in {stack.log_dir}")
            report = self._run_on(stack, pages)
        finally:
            stack.stop()
            pages.stop()
        report.log_findings = [str(f) for f in scan(stack.log_dir, self.canaries()).findings]
        report.seconds = round(time.monotonic() - started, 1)
        if report.verdict.clean and not report.log_findings:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            report.kept = folder
        return report

    def canaries(self) -> list[Canary]:
        """Raw values the run sends that no log line may hold."""
        return [
            Canary("user_id", self.plan.erased_user),
            Canary("session_id", f"{BrowserLoad.SESSION_PREFIX}{self.seed}-0"),
            Canary("prop_value", self.plan.prop_canary),
            Canary("transcript", self.plan.transcript_canary),
            Canary("email", self.plan.email_canary),
        ]

    def _run_on(self, stack: DevStack, pages: PageServer) -> ChaosReport:
        ingest = stack.function_urls["ingest"]
        proxy = LedgerProxy(ingest, self.ledger).start()
        supervisor = Supervisor(stack).start()
        assert stack.relay is not None
        duplicate_rng = random.Random(self.seed + 11)  # noqa: S311 - a replayable share
        share = self.options.faults.duplicate_share
        stack.relay.copies = lambda _m: 3 if duplicate_rng.random() < share else 1
        self._fault_log = FaultLog()
        stop = threading.Event()
        load_ended: list[float] = []

        def give_up_at() -> float:
            return (load_ended[0] if load_ended else float("inf")) + self.options.give_up_after_s

        url = f"{proxy.url}/v1/events"
        beacons = BeaconLoad(self.plan, url, self.counts, give_up_at)
        backend = BackendLoad(self.plan, url, self.counts)
        browser = BrowserLoad(self.plan, url, pages.origin, self.counts)
        errors: list[BaseException] = []

        def guarded(fn: Callable[[], object]) -> Callable[[], None]:
            def run() -> None:
                try:
                    fn()
                except BaseException as exc:  # reported after the run, never swallowed
                    errors.append(exc)
                    stop.set()

            return run

        browser_deadline = time.monotonic() + self.plan.duration_s + self.options.give_up_after_s

        def browser_gives_up() -> float:
            return browser_deadline

        def browser_settled(sessions: dict[str, int]) -> bool:
            by_client = self.ledger.by_client()
            return all(by_client.get(s, 0) >= n for s, n in sessions.items())

        threads = [threading.Thread(target=guarded(beacons.run_erased_person), name="erased")]
        threads += [
            threading.Thread(
                target=guarded(functools.partial(beacons.run_thread, i)), name=f"beacon-{i}"
            )
            for i in range(self.plan.beacon_threads)
        ]
        threads.append(threading.Thread(target=guarded(lambda: backend.run(stop)), name="backend"))
        threads.append(
            threading.Thread(
                target=guarded(lambda: browser.run(stop, browser_settled, browser_gives_up)),
                name="browser",
            )
        )
        controller = FaultController(
            stack,
            self.seed,
            self.options.faults,
            hold=proxy.held,
            drained=self.drained,
            capture_dead_letters=lambda: self.capture_dead_letters(stack),
            erase=lambda: self.erase(stack, beacons),
            log=self._fault_log,
        )
        self.progress("faults in order: " + ", ".join(controller.order))
        fault_thread = threading.Thread(
            target=guarded(lambda: controller.run(self._done_share, stop)),
            name="faults",
        )
        for thread in [*threads, fault_thread]:
            thread.start()
        self._watch(threads, fault_thread, stop)
        load_ended.append(time.monotonic())
        backend.finish(60)
        fault_thread.join()
        for thread in threads:
            thread.join(self.options.give_up_after_s + 60)
        if errors:
            raise errors[0]
        self.progress(f"load done: {self.ledger.accepted()} accepted; draining")
        self._drain()
        self.progress("final snapshot")
        runs = self._snapshot_until_caught_up(stack.function_urls["snapshot"])
        self.progress(f"final snapshot: {runs} runs")
        verdict = self._check(stack, controller)
        supervisor.stop.set()
        proxy.stop()
        return ChaosReport(
            seed=self.seed,
            verdict=verdict,
            faults=self._fault_log,
            counts=self.counts,
            ledger=self.ledger,
            duplicated_deliveries=stack.relay.duplicated,
            restarted=supervisor.restarted,
            seconds=0.0,
        )

    def _watch(
        self, threads: list[threading.Thread], faults: threading.Thread, stop: threading.Event
    ) -> None:
        """Print periodic counts until the load's threads end."""
        last = 0.0
        while any(t.is_alive() for t in threads) or faults.is_alive():
            time.sleep(0.5)
            if time.monotonic() - last >= 10:
                last = time.monotonic()
                self.progress(
                    f"load: {self.counts.made} made, {self.ledger.accepted()} accepted, "
                    f"{self.counts.retries} retried requests"
                )
                logger.info(
                    "chaos progress",
                    extra={"made": self.counts.made, "accepted": self.ledger.accepted()},
                )
            if stop.is_set():
                return

    def _drain(self) -> None:
        deadline = time.monotonic() + self.options.drain_timeout_s
        last = -1
        while time.monotonic() < deadline:
            if self.drained():
                return
            if len(self._stored) != last:
                last = len(self._stored)
                self.progress(f"drain: {last} of {self.ledger.accepted()} stored")
            time.sleep(2)

    def _snapshot_until_caught_up(self, url: str, most: int = 10) -> int:
        """Run the snapshot until a run finds nothing new: a run that resumes the pending range
        of a killed one covers only that range, and the next takes the rest. The runs made."""
        for made in range(1, most + 1):
            status, answer = post_until_done(url, {})
            if status != 200:
                raise RuntimeError(f"the final snapshot answered {status}")
            tables = answer["tables"]
            if not any(t["rows"] or t["resumed"] for t in tables):
                return made
        return most

    def _check(self, stack: DevStack, controller: FaultController) -> Verdict:
        from shared.contract.registry.loader import default_registry
        from shared.settings import get_settings
        from shared.storage.gcs import get_storage_client
        from shared.storage.hot.engine import get_engine
        from shared.storage.warm.query import open_views
        from shared.storage.warm.reconcile import reconcile as reconcile_days

        settings = get_settings()
        engine = get_engine()
        entries = self.ledger.snapshot()
        self.capture_dead_letters(stack)
        dead, reasons, unexplained = self.dead_letters.explain(
            set(controller.poison_ids), {e.event_id for e in entries}
        )
        views = open_views(settings, engine, default_registry(), tier="warm")
        try:
            warm = warm_counts(views, entries)
        finally:
            views.close()
        verdict = reconcile(entries, hot_counts(engine, entries), warm, dead, self.plan.erased_user)
        verdict.reasons = reasons
        verdict.unexplained = unexplained
        verdict.dead_letter_messages = self.dead_letters.originals()
        verdict.dead_letter_copies = len(self.dead_letters.messages)
        missing_poison = set(controller.poison_ids) - {
            m.attributes.get("original_message_id", "") for m in self.dead_letters.messages.values()
        }
        verdict.unexplained += [f"poison message {m} was not dead-lettered" for m in missing_poison]
        bucket = get_storage_client(settings).bucket(settings.telemetry_bucket)
        checks, mismatches = reconcile_days(engine, bucket)
        verdict.days_compared = len(checks)
        verdict.day_mismatches = [str(m) for m in mismatches]
        return verdict
