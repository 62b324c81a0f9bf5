"""Added latency of ``track_api_call`` per call: a decorated no-op against the bare function,
side by side in one run, for sync and async. The client queues to a transport that discards
(the background sender's work happens on its own thread, as in production).
Last line: ``decorator: +<N> µs p50, +<M> µs p99 per call`` (sync; async printed above it).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import telemetry_client as tc
from telemetry_client.sender import SenderStats

CALLS = 50_000
ROUNDS = 5


class Discard:
    def __init__(self, stats: SenderStats) -> None:
        pass

    def send(self, events: list[dict[str, Any]]) -> None:
        pass


def bare() -> int:
    return 1


@tc.track_api_call(provider="anthropic", model="claude-sonnet-4", operation="bench")
def tracked() -> int:
    return 1


async def abare() -> int:
    return 1


@tc.track_api_call(provider="anthropic", model="claude-sonnet-4", operation="bench")
async def atracked() -> int:
    return 1


def sample(fn: Any) -> list[float]:
    out = []
    clock = time.perf_counter_ns
    for _ in range(CALLS):
        start = clock()
        fn()
        out.append((clock() - start) / 1000)
    return out


async def asample(fn: Any) -> list[float]:
    out = []
    clock = time.perf_counter_ns
    for _ in range(CALLS):
        start = clock()
        await fn()
        out.append((clock() - start) / 1000)
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1))]


def main() -> None:
    client = tc.configure(Discard, max_queue=1_000_000, batch_size=500, delay=0.05)
    results: dict[str, list[float]] = {"bare": [], "tracked": [], "abare": [], "atracked": []}
    for _ in range(ROUNDS):  # interleaved so machine noise hits both sides alike
        results["bare"] += sample(bare)
        results["tracked"] += sample(tracked)
        results["abare"] += asyncio.run(asample(abare))
        results["atracked"] += asyncio.run(asample(atracked))
        client.flush(30)
    for name, values in results.items():
        print(
            f"{name:<9} p50 {pct(values, 0.5):7.2f} µs  p99 {pct(values, 0.99):7.2f} µs  mean {statistics.fmean(values):7.2f} µs"
        )
    print(f"events sent {client.stats.sent}, dropped {client.stats.dropped_queue_full}")
    sync50 = pct(results["tracked"], 0.5) - pct(results["bare"], 0.5)
    sync99 = pct(results["tracked"], 0.99) - pct(results["bare"], 0.99)
    async50 = pct(results["atracked"], 0.5) - pct(results["abare"], 0.5)
    async99 = pct(results["atracked"], 0.99) - pct(results["abare"], 0.99)
    print(f"async: +{async50:.1f} µs p50, +{async99:.1f} µs p99 per call")
    print(f"goal: under 20 µs p50 added -> {'met' if max(sync50, async50) < 20 else 'NOT met'}")
    print(f"decorator: +{sync50:.1f} µs p50, +{sync99:.1f} µs p99 per call")
    client.shutdown(10)


if __name__ == "__main__":
    main()
