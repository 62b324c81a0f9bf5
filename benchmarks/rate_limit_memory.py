"""The rate limiter's memory bound on the real ingest, under a million distinct senders.

One ingest function (functions-framework, the stack's Pub/Sub emulator) with the production
defaults (``TELEMETRY_RATE_MAX_KEYS`` 100,000) receives ``--senders`` requests (a million by
default), each from its own address and session, over keep-alive connections from a few
threads. Each request's one event breaks its schema, so the limiter admits the sender (its
buckets are what is measured) and nothing is published. The ingest processes' resident memory
(the gunicorn master and its workers, from ``/proc``) is read before, every 100,000 senders,
and after; the last ``rate limiter keys`` log line gives the tables' sizes.

Last line: ``rate-limit memory: <n> distinct senders, <k> keys kept per sender table, <f>
forgotten, ingest RSS <a> MB at 100 k senders -> <b> MB at <n>``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import json
import sys
import tempfile
import time
import urllib.parse
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)

from telemetry_cli.stack.devstack import StackOptions, running_stack  # noqa: E402
from telemetry_cli.stack.functions import running_function  # noqa: E402

ORIGIN = "http://localhost:8000"


def rss_mb(port: int) -> float:
    """Resident memory of the processes listening on ``port`` and their children (MB)."""
    total = 0
    for status in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            cmdline = status.read_bytes().replace(b"\0", b" ")
            if f"--port {port}".encode() not in cmdline:
                continue
            for line in (status.parent / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def send(url: str, first: int, count: int, step: int) -> int:
    """Requests ``first, first + step, …`` below ``count``, each its own sender; 429s seen."""
    parsed = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port, timeout=30)
    ts = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    refused = 0
    for n in range(first, count, step):
        body = json.dumps(
            {
                "context": {"session_id": f"s-{n}"},
                "events": [
                    {
                        "event_id": str(uuid.uuid4()),
                        "name": "node.expand",
                        "ts": ts,
                        "props": {"node_id": 7},  # not a string: refused, never published
                    }
                ],
            }
        ).encode()
        address = f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"
        connection.request(
            "POST",
            parsed.path,
            body,
            {"Content-Type": "application/json", "Origin": ORIGIN, "X-Forwarded-For": address},
        )
        response = connection.getresponse()
        response.read()
        refused += response.status == 429
    connection.close()
    return refused


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--senders", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=6)
    args = parser.parse_args()
    chunk = 100_000
    with tempfile.TemporaryDirectory(prefix="bench-limiter-") as tmp:
        options = StackOptions(
            state_dir=Path(tmp) / "state", with_functions=False, persistent=False
        )
        with running_stack(options) as stack:
            env = {**stack.env(), "TELEMETRY_LOG_SUMMARY_S": "5"}
            logs = Path(tmp) / "logs"
            logs.mkdir()
            with running_function("ingest", env, logs) as base:
                url = f"{base}/v1/events"
                port = int(base.rsplit(":", 1)[1])
                print(f"ingest RSS before: {rss_mb(port):.0f} MB", flush=True)
                readings: list[tuple[int, float]] = []
                refused = 0
                started = time.monotonic()
                for low in range(0, args.senders, chunk):
                    high = min(args.senders, low + chunk)
                    with concurrent.futures.ThreadPoolExecutor(args.threads) as pool:
                        parts = [
                            pool.submit(send, url, low + t, high, args.threads)
                            for t in range(args.threads)
                        ]
                        refused += sum(p.result() for p in parts)
                    readings.append((high, rss_mb(port)))
                    rate = high / (time.monotonic() - started)
                    print(
                        f"{high:9,d} senders: ingest RSS {readings[-1][1]:.0f} MB "
                        f"({rate:.0f} senders/s, {refused} refused)",
                        flush=True,
                    )
                time.sleep(5.5)  # a summary interval, then one more request to flush it
                send(url, args.senders, args.senders + 1, 1)
            lines = [
                json.loads(line)
                for log in logs.glob("*.log")
                for line in log.read_text().splitlines()
                if '"rate limiter keys"' in line
            ]
    last = lines[-1]
    kept = max(last["keys"]["session"], last["keys"]["ip"])
    forgotten = last["forgotten"]["ip"]
    first_mb, last_mb = readings[0][1], readings[-1][1]
    print(
        f"rate-limit memory: {args.senders:,d} distinct senders, {kept:,d} keys kept per sender "
        f"table, {forgotten:,d} forgotten, ingest RSS {first_mb:.0f} MB at {readings[0][0]:,d} "
        f"senders -> {last_mb:.0f} MB at {readings[-1][0]:,d}"
    )


if __name__ == "__main__":
    main()
