"""Ingest under a flood: do well-behaved senders stay whole while abusive ones are held back?

On loopback only, bounded in time, against the real ingest function (functions-framework) on
the Pub/Sub emulator, with the production rate limits. Each sender has its own client address
(``X-Forwarded-For``, as Cloud Run's front end appends it) and session:

* 50 **good** senders at a reader's normal rate: one beacon of 5 events every 2 s;
* phase 1, **no flood**: the good senders alone (the reference);
* phase 2, **one abuser** at 50 times the normal rate (25 beacons a second);
* phase 3, **1,000 abusers behind one address**, each at the normal rate, with a new session id
  on every request (500 beacons a second from one address).

Per phase it prints the good senders' accepted share and p99 latency, and the abusers'
accepted share. Last line: ``flood: good senders accepted <a> %, p99 <x> ms vs <y> ms without
flood, abusive accepted <b> %`` (the worse of the two flood phases for each figure).
Goal: good >= 99.9 %, p99 <= 2x the run without flood, abusive <= 5 %.
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shared.settings import Settings  # noqa: E402
from telemetry_cli.stack.devstack import StackOptions, running_stack  # noqa: E402
from telemetry_cli.stack.functions import running_function  # noqa: E402

PHASE_S = float(os.environ.get("BENCH_FLOOD_PHASE_S", "30"))
GOOD_SENDERS = 50
EVENTS = 5
PERIOD_S = 2.0
ABUSE_FACTOR = 50
ROTATING_SENDERS = 1000
ROTATING_THREADS = 20
ORIGIN = "http://localhost:8000"


@dataclass
class Tally:
    """What one group of senders sent and got."""

    sent: int = 0
    accepted: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, status: int, accepted: int, latency_ms: float) -> None:
        with self.lock:
            self.sent += EVENTS
            self.accepted += accepted
            self.latencies_ms.append(latency_ms)
            self.statuses[status] = self.statuses.get(status, 0) + 1

    @property
    def share(self) -> float:
        return 100.0 * self.accepted / self.sent if self.sent else float("nan")

    def p99(self) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else 0.0


def beacon(session: str) -> bytes:
    ts = datetime.now(UTC).isoformat()
    events = [
        {"event_id": str(uuid.uuid4()), "name": "node.expand", "ts": ts, "props": {"node_id": "n"}}
        for _ in range(EVENTS)
    ]
    return json.dumps({"context": {"session_id": session}, "events": events}).encode()


def sender(
    port: int,
    address: str,
    sessions: list[str] | None,
    period_s: float,
    tally: Tally,
    stop: threading.Event,
    start_delay_s: float = 0.0,
) -> None:
    """Send a beacon every ``period_s`` (paced, not as fast as possible) until ``stop``; a new
    session id on every request when ``sessions`` is None."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/json", "Origin": ORIGIN, "X-Forwarded-For": address}
    next_at = time.monotonic() + start_delay_s
    turn = 0
    while not stop.is_set():
        pause = next_at - time.monotonic()
        if pause > 0 and stop.wait(pause):
            break
        next_at += period_s
        session = sessions[turn % len(sessions)] if sessions else f"s-rot-{uuid.uuid4().hex}"
        turn += 1
        body = beacon(session)
        started = time.perf_counter()
        try:
            try:
                conn.request("POST", "/v1/events", body, headers)
                response = conn.getresponse()
            except (OSError, http.client.HTTPException):
                # The server closed the idle keep-alive connection as we reused it (gunicorn
                # keeps one 2 s): send again on a new one, as any HTTP client does. A beacon
                # is idempotent (its event ids), so a second delivery stores nothing twice.
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                conn.request("POST", "/v1/events", body, headers)
                response = conn.getresponse()
            answer = response.read()
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            tally.add(0, 0, (time.perf_counter() - started) * 1000)
            continue
        latency = (time.perf_counter() - started) * 1000
        accepted = json.loads(answer).get("accepted", 0) if response.status == 202 else 0
        tally.add(response.status, int(accepted), latency)
    conn.close()


def phase(port: int, abusers: str | None) -> tuple[Tally, Tally]:
    """One phase: the good senders, and ``abusers`` ("one" or "rotating") beside them."""
    stop = threading.Event()
    good, bad = Tally(), Tally()
    threads = [
        threading.Thread(
            target=sender,
            args=(port, f"10.1.{n // 250}.{n % 250 + 1}", [f"s-good-{n}"], PERIOD_S, good, stop),
            kwargs={"start_delay_s": PERIOD_S * n / GOOD_SENDERS},  # spread over the period
        )
        for n in range(GOOD_SENDERS)
    ]
    if abusers == "one":
        threads.append(
            threading.Thread(
                target=sender,
                args=(port, "203.0.113.7", ["s-abuser"], PERIOD_S / ABUSE_FACTOR, bad, stop),
            )
        )
    elif abusers == "rotating":
        per_thread = PERIOD_S * ROTATING_THREADS / ROTATING_SENDERS
        threads += [
            threading.Thread(
                target=sender,
                args=(port, "203.0.113.66", None, per_thread, bad, stop),
                kwargs={"start_delay_s": per_thread * n / ROTATING_THREADS},
            )
            for n in range(ROTATING_THREADS)
        ]
    for thread in threads:
        thread.start()
    time.sleep(PHASE_S)
    stop.set()
    for thread in threads:
        thread.join(60)
    return good, bad


def main() -> None:
    defaults = Settings()
    with tempfile.TemporaryDirectory(prefix="bench-flood-") as tmp:
        options = StackOptions(state_dir=Path(tmp), with_functions=False, persistent=False)
        with running_stack(options) as stack:
            env = {
                **stack.env(),
                # The production limits (the local stack widens the per-address one: there,
                # everything comes from loopback; here each sender has its own address).
                "TELEMETRY_RATE_IP_EPS": str(defaults.telemetry_rate_ip_eps),
                "TELEMETRY_RATE_IP_BURST": str(defaults.telemetry_rate_ip_burst),
                "TELEMETRY_ALLOWED_ORIGINS": ORIGIN,
            }
            with running_function("ingest", env, Path(tmp)) as url:
                port = int(url.rsplit(":", 1)[1])
                phase(port, None)  # warm-up, not counted
                results = {}
                for name in (None, "one", "rotating"):
                    good, bad = phase(port, name)
                    results[name] = (good, bad)
                    label = {
                        None: "no flood",
                        "one": "one abuser at 50x",
                        "rotating": "1,000 abusers, one address",
                    }[name]
                    abusive = (
                        f", abusive accepted {bad.share:.2f} % of {bad.sent} events" if name else ""
                    )
                    print(
                        f"{label}: good accepted {good.share:.2f} % of {good.sent} events, "
                        f"p50 {statistics.median(good.latencies_ms):.1f} ms, p99 {good.p99():.1f} ms"
                        f"{abusive}; statuses good {good.statuses} bad {bad.statuses}",
                        flush=True,
                    )
    calm = results[None][0]
    flooded = [results["one"], results["rotating"]]
    good_share = min(g.share for g, _ in flooded)
    good_p99 = max(g.p99() for g, _ in flooded)
    bad_share = max(b.share for _, b in flooded)
    print(
        f"goal: good >= 99.9 % -> {'met' if good_share >= 99.9 else 'NOT met'}; "
        f"p99 <= 2x -> {'met' if good_p99 <= 2 * calm.p99() else 'NOT met'}; "
        f"abusive <= 5 % -> {'met' if bad_share <= 5 else 'NOT met'}"
    )
    print(
        f"flood: good senders accepted {good_share:.2f} %, p99 {good_p99:.1f} ms vs "
        f"{calm.p99():.1f} ms without flood, abusive accepted {bad_share:.2f} %"
    )


if __name__ == "__main__":
    main()
