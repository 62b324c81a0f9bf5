"""The chaos run's load: synthetic events through three real clients, all via the ledger proxy.

* **Beacons**: threads that POST browser-shaped 50-event batches from the synthetic generator,
  retrying a batch (same event ids) on 5xx or no answer, as the web client does.
* **Browser**: the real JS client (``clients/js/dist/telemetry.iife.js``) in headless Chromium,
  one page per session, tracking ``node.expand`` events.
* **Backend**: ``track_api_call`` around a fake LLM call, inside ``call_context``.

Some sessions are shaped by the run's faults: a client clock skewed by up to ±5 minutes, events
sent 48 hours late, and the person to be erased (whose sessions all end before the erasure).
"""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from telemetry_cli.generator import EventGenerator

PROJECT_DIR = Path(__file__).resolve().parents[2]
IIFE = PROJECT_DIR / "clients" / "js" / "dist" / "telemetry.iife.js"
#: How late the late events are sent.
LATE_BY = timedelta(hours=48)
#: The largest client clock skew.
MAX_SKEW = timedelta(minutes=5)
BATCH_SIZE = 50


@dataclass
class LoadPlan:
    """How many events each client sends, and the shapes some of them take."""

    events: int
    seed: int
    browser_share: float = 0.05
    backend_share: float = 0.1
    skew_share: float = 0.2
    late_share: float = 0.05
    beacon_threads: int = 4
    #: Events per second the beacon senders make (paced, so the faults fall inside the load).
    rate: float = 600.0
    #: The person the run erases in the middle of the load (their sessions end before it).
    erased_user: str = "u-chaos-erased-person"
    erased_sessions: int = 3

    @property
    def prop_canary(self) -> str:
        """A prop value the browser sends (node ids start with it): never in a log line."""
        return f"chaos-canary-prop-{self.seed}"

    @property
    def transcript_canary(self) -> str:
        """Transcript-like text some feedback events carry in ``page_url`` (``x-pii: drop``)."""
        return f"and then the speaker said the canary words {self.seed} to the whole room"

    @property
    def email_canary(self) -> str:
        """An email some feedback events carry in ``contact_email`` (``x-pii: hash``)."""
        return f"chaos.canary.{self.seed}@example.com"

    @property
    def browser_events(self) -> int:
        return int(self.events * self.browser_share)

    @property
    def backend_events(self) -> int:
        return int(self.events * self.backend_share)

    @property
    def beacon_events(self) -> int:
        return self.events - self.browser_events - self.backend_events

    @property
    def duration_s(self) -> float:
        """How long the load lasts: every client spreads its events over this time."""
        return max(1.0, self.beacon_events / self.rate)


@dataclass
class LoadCounts:
    """What the clients did (the ledger says what ingest accepted)."""

    made: int = 0
    requests: int = 0
    retries: int = 0
    gave_up: int = 0
    skewed: int = 0
    late: int = 0
    erased_person: int = 0
    client_dropped: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, **counts: int) -> None:
        with self.lock:
            for key, value in counts.items():
                setattr(self, key, getattr(self, key) + value)


def shift(events: list[dict[str, Any]], by: timedelta) -> None:
    """Move the events' times by ``by`` (a skewed clock, a late delivery)."""
    for event in events:
        ts = datetime.fromisoformat(event["ts"].replace("Z", "+00:00")) + by
        event["ts"] = ts.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def post_until_answered(
    url: str, body: bytes, stop: threading.Event, counts: LoadCounts, give_up_at: float
) -> int:
    """POST a beacon, retrying (the same body) on 5xx or no answer; the final status."""
    delay = 0.2
    while True:
        request = urllib.request.Request(  # noqa: S310 - the run's own proxy
            url,
            data=body,
            headers={"Content-Type": "text/plain;charset=UTF-8", "Origin": "http://127.0.0.1"},
        )
        counts.add(requests=1)
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
                return int(answer.status)
        except urllib.error.HTTPError as error:
            status = error.code
            retry_after = float(error.headers.get("Retry-After") or 0)
        except OSError:
            status, retry_after = 0, 0.0
        if status and status < 500 and status != 429:
            return status
        if time.monotonic() > give_up_at:
            counts.add(gave_up=1)
            return status
        counts.add(retries=1)
        stop.wait(max(delay, min(retry_after, 2.0)))
        delay = min(delay * 2, 2.0)


class BeaconLoad:
    """Beacon threads over the generator's sessions."""

    def __init__(
        self,
        plan: LoadPlan,
        url: str,
        counts: LoadCounts,
        give_up_at: Callable[[], float],
    ) -> None:
        self.plan = plan
        self.url = url
        self.counts = counts
        self.give_up_at = give_up_at
        self.stop = threading.Event()
        self.erased_done = threading.Event()
        self._remaining = plan.beacon_events
        #: The erased person's sessions, reserved up front (their thread may run late).
        self._erased_sizes: list[int] = []
        for _ in range(plan.erased_sessions):
            size = min(20, self._remaining)
            self._remaining -= size
            self._erased_sizes.append(size)
        self._lock = threading.Lock()
        self._paced = 0
        self._pace_start = time.monotonic()

    def _take(self, wanted: int) -> int:
        with self._lock:
            taken = min(wanted, self._remaining)
            self._remaining -= taken
            return taken

    def run_erased_person(self) -> None:
        """The erased person's sessions, sent first; :attr:`erased_done` once all are answered."""
        generator = EventGenerator(seed=self.plan.seed + 7)
        for size in self._erased_sizes:
            if not size:
                continue
            events = generator.session(size)
            for event in events:
                event["user_id"] = self.plan.erased_user
            self.counts.add(made=len(events), erased_person=len(events))
            self._send(events)
        self.erased_done.set()

    def run_thread(self, index: int) -> None:
        rng = random.Random(self.plan.seed * 100 + index)  # noqa: S311 - load shapes
        generator = EventGenerator(seed=self.plan.seed * 1000 + index)
        while not self.stop.is_set():
            count = self._take(rng.randint(5, 40))
            if not count:
                return
            events = generator.session(count)
            if rng.random() < self.plan.late_share:
                shift(events, -LATE_BY)
                self.counts.add(late=len(events))
            elif rng.random() < self.plan.skew_share:
                shift(events, timedelta(seconds=rng.uniform(-1, 1) * MAX_SKEW.total_seconds()))
                self.counts.add(skewed=len(events))
            for event in events:  # free text and an email where people might type them
                if event["name"] == "feedback.submit" and event.get("version") == 1:
                    event["props"]["page_url"] = self.plan.transcript_canary
                    event["props"]["contact_email"] = self.plan.email_canary
            self.counts.add(made=len(events))
            self._send(events)

    def _pace(self, count: int) -> None:
        """Wait until sending ``count`` more events keeps the senders at :attr:`LoadPlan.rate`."""
        with self._lock:
            self._paced += count
            due = self._pace_start + self._paced / self.plan.rate
        self.stop.wait(max(0.0, due - time.monotonic()))

    def _send(self, events: list[dict[str, Any]]) -> None:
        for start in range(0, len(events), BATCH_SIZE):
            self._pace(min(BATCH_SIZE, len(events) - start))
            chunk = events[start : start + BATCH_SIZE]
            body = json.dumps({"context": {"app_version": "chaos"}, "events": chunk}).encode()
            post_until_answered(self.url, body, self.stop, self.counts, self.give_up_at())


class BackendLoad:
    """``track_api_call`` around a fake LLM call, sent through ingest by ``HttpTransport``."""

    def __init__(self, plan: LoadPlan, url: str, counts: LoadCounts) -> None:
        import functools

        from telemetry_client import TelemetryClient
        from telemetry_client.sender import HttpTransport

        self.plan = plan
        self.counts = counts
        # The library's own retries (TELEMETRY_CLIENT_RETRY_S, 60 s) ride out the emulator restart.
        self.client = TelemetryClient(
            functools.partial(HttpTransport, url), batch_size=50, delay=0.2
        )
        self.client.start()

    def run(self, stop: threading.Event) -> None:
        from telemetry_client import call_context, track_api_call

        rng = random.Random(self.plan.seed + 3)  # noqa: S311

        class Usage:
            def __init__(self) -> None:
                self.input_tokens = rng.randint(500, 4000)
                self.output_tokens = rng.randint(50, 400)
                self.cache_read_input_tokens = 0
                self.cache_creation_input_tokens = 0

        class Reply:
            def __init__(self) -> None:
                self.usage = Usage()

        @track_api_call("anthropic", "claude-sonnet-4", "bias_prefilter", client=self.client)
        def call_llm() -> Reply:
            return Reply()

        started = time.monotonic()
        per_s = self.plan.backend_events / self.plan.duration_s
        for index in range(self.plan.backend_events):
            if stop.wait(max(0.0, started + index / per_s - time.monotonic())):
                break
            with call_context(
                conversation_id=f"c-chaos-{index // 20}",
                session_id=f"s-chaos-backend-{index // 20}",
                user_id=f"u-{rng.randint(1, 500)}",
            ):
                call_llm()
            self.counts.add(made=1)

    def finish(self, timeout_s: float) -> None:
        self.client.flush(timeout_s)
        self.client.shutdown(1.0)
        self.counts.add(client_dropped=self.client.stats.dropped_send_failed)


_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>chaos</title>
<script src="/telemetry.iife.js"></script>
<script>
  const p = new URLSearchParams(location.search);
  Telemetry.init({endpoint: p.get("endpoint"), consent: true, sessionId: p.get("session"),
                  batchSize: 50, flushMs: 500, maxStored: 1000, appVersion: "chaos"});
  Telemetry.identify(p.get("user"));
  window.trackSome = (n, prefix) => {
    for (let i = 0; i < n; i++) Telemetry.track("node.expand", {node_id: prefix + i});
  };
</script></head><body>chaos</body></html>"""


class _PageHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/telemetry.iife.js"):
            body, kind = IIFE.read_bytes(), "text/javascript"
        else:
            body, kind = _PAGE.encode(), "text/html"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class PageServer:
    """Serves the page that loads the built JS client (its origin must be allowed by ingest)."""

    def __init__(self) -> None:
        if not IIFE.exists():
            from telemetry_cli.stack.errors import StackError

            raise StackError(
                "the JS client is not built: run `make js` (npm ci && npm run build in clients/js)"
            )
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _PageHandler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class BrowserLoad:
    """The JS client in headless Chromium: pages of 200 tracked events each."""

    PER_PAGE = 200
    SESSION_PREFIX = "s-chaos-browser-"

    def __init__(self, plan: LoadPlan, endpoint: str, origin: str, counts: LoadCounts) -> None:
        self.plan = plan
        self.endpoint = endpoint
        self.origin = origin
        self.counts = counts
        #: Events tracked per browser session (one page each).
        self.sessions: dict[str, int] = {}

    def run(
        self,
        stop: threading.Event,
        settled: Callable[[dict[str, int]], bool],
        give_up_at: Callable[[], float],
    ) -> None:
        """Track every browser event, then keep the pages open until ``settled`` says the
        ledger holds them all (the client retries with backoff through outages), ``stop``, or
        ``give_up_at`` passes (what the pages never got accepted is simply not in the ledger).
        Each page's client may keep 1,000 events while ingest is down (its default is 200)."""
        import shutil
        from urllib.parse import urlencode

        from playwright.sync_api import sync_playwright

        from telemetry_cli.stack.errors import StackError

        executable = shutil.which("chromium") or shutil.which("chromium-browser")
        if executable is None:
            raise StackError("Chromium is missing: `make setup` installs Debian's chromium")
        remaining = self.plan.browser_events
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=executable,
                headless=True,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            )
            try:
                page_index = 0
                pages = -(-remaining // self.PER_PAGE)
                every_s = self.plan.duration_s / max(1, pages)
                started = time.monotonic()
                while remaining > 0 and not stop.wait(
                    max(0.0, started + page_index * every_s - time.monotonic())
                ):
                    count = min(self.PER_PAGE, remaining)
                    remaining -= count
                    session = f"{self.SESSION_PREFIX}{self.plan.seed}-{page_index}"
                    query = urlencode(
                        {"endpoint": self.endpoint, "session": session, "user": f"u-b{page_index}"}
                    )
                    page = browser.new_page()
                    page.goto(f"{self.origin}/?{query}")
                    for start in range(0, count, 25):
                        page.evaluate(
                            f"trackSome({min(25, count - start)}, "
                            f"'{self.plan.prop_canary}-{start}-')"
                        )
                        page.wait_for_timeout(50)
                    self.sessions[session] = count
                    self.counts.add(made=count)
                    page_index += 1
                while (
                    not stop.is_set()
                    and not settled(dict(self.sessions))
                    and time.monotonic() < give_up_at()
                ):
                    time.sleep(0.25)  # the pages' clients run in Chromium meanwhile
            finally:
                browser.close()
