"""A small HTTP load generator: processes x threads of keep-alive POSTs, bounded in time.

Used by the benchmarks against servers on 127.0.0.1 only. Each worker process sends bodies
round-robin for a fixed duration and reports its latencies.
"""

from __future__ import annotations

import http.client
import multiprocessing as mp
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass
class LoadResult:
    """Requests done, their statuses and latencies."""

    requests: int
    seconds: float
    statuses: dict[int, int]
    latencies_ms: list[float]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _worker(
    url: str,
    bodies: list[bytes],
    headers: dict[str, str],
    seconds: float,
    threads: int,
    out: mp.Queue[Any],
) -> None:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    stop_at = time.monotonic() + seconds
    lock = threading.Lock()
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    def run(offset: int) -> None:
        conn = http.client.HTTPConnection(host, parts.port, timeout=30)
        i = offset
        local_lat: list[float] = []
        local_status: dict[int, int] = {}
        while time.monotonic() < stop_at:
            body = bodies[i % len(bodies)]
            i += threads
            started = time.perf_counter()
            try:
                conn.request("POST", parts.path or "/", body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(host, parts.port, timeout=30)
                status = 0
            local_lat.append((time.perf_counter() - started) * 1000)
            local_status[status] = local_status.get(status, 0) + 1
        conn.close()
        with lock:
            latencies.extend(local_lat)
            for key, value in local_status.items():
                statuses[key] = statuses.get(key, 0) + value

    pool = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    out.put((latencies, statuses))


def run_load(
    url: str,
    bodies: list[bytes],
    headers: dict[str, str],
    seconds: float = 8.0,
    processes: int = 2,
    threads: int = 4,
) -> LoadResult:
    """POST ``bodies`` to ``url`` for ``seconds``; the merged result."""
    queue: mp.Queue[Any] = mp.Queue()
    started = time.monotonic()
    workers = [
        mp.Process(
            target=_worker,
            args=(url, bodies[p::processes] or bodies, headers, seconds, threads, queue),
        )
        for p in range(processes)
    ]
    for worker in workers:
        worker.start()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    for _ in workers:
        lat, stat = queue.get(timeout=seconds + 120)
        latencies.extend(lat)
        for key, value in stat.items():
            statuses[key] = statuses.get(key, 0) + value
    for worker in workers:
        worker.join()
    return LoadResult(len(latencies), time.monotonic() - started, statuses, latencies)
