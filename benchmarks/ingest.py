"""Ingest throughput: events/s per core through the real HTTP server, validated and published
to the emulator, side by side with a bare WSGI app under the same server that only parses the
same JSON and answers 202 (the ceiling).

Both servers run with the same gunicorn settings (WORKERS=1, THREADS=8 unless set), one after
the other in this run, under the same load (batches of 50 realistic events, 2 load processes x
4 keep-alive connections). On this 2-core machine the load generator and the Pub/Sub emulator
share the cores with the server, so the figure compared is events per CPU-second of the server's
own processes ("per core"); wall-clock rates and latencies are printed beside it.
Last line: ``ingest: <N> events/s, ceiling <M> events/s, ratio <N/M>`` (per core).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._loadgen import run_load  # noqa: E402
from shared.generator import EventGenerator  # noqa: E402
from telemetry_cli.stack.devstack import StackOptions, running_stack  # noqa: E402
from telemetry_cli.stack.functions import function_process, wait_function  # noqa: E402
from telemetry_cli.stack.process import ManagedProcess, free_port, port_answers  # noqa: E402

BATCH = 50
SECONDS = float(os.environ.get("BENCH_SECONDS", "8"))


def bodies() -> list[bytes]:
    """200 beacon bodies of exactly 50 realistic events (one session each)."""
    generator = EventGenerator(seed=42)
    return [
        json.dumps(
            {"context": {"app_version": "1.8.0"}, "events": generator.session(events=BATCH)}
        ).encode()
        for _ in range(200)
    ]


def group_cpu_seconds(pgid: int) -> float:
    """CPU time (user + system) used so far by every process of a process group."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def measure(
    label: str, url: str, pgid: int, payloads: list[bytes], headers: dict[str, str]
) -> float:
    """Run the load; print wall figures and events per server CPU-second; return the latter."""
    cpu_before = group_cpu_seconds(pgid)
    result = run_load(url, payloads, headers, SECONDS)
    cpu = group_cpu_seconds(pgid) - cpu_before
    ok = result.statuses.get(202, 0)
    per_core = ok * BATCH / cpu if cpu else float("nan")
    print(
        f"{label:<8} {ok / result.seconds:7.0f} req/s {ok * BATCH / result.seconds:8.0f} events/s wall, "
        f"server CPU {cpu:5.2f} s -> {per_core:8.0f} events/s per core; "
        f"p50 {result.percentile(0.5):6.2f} ms p99 {result.percentile(0.99):7.2f} ms; statuses {result.statuses}"
    )
    return per_core


def main() -> None:
    os.environ.setdefault("WORKERS", "1")
    os.environ.setdefault("THREADS", "8")
    payloads = bodies()
    headers = {"Content-Type": "text/plain;charset=UTF-8", "Origin": "http://localhost:8000"}
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        options = StackOptions(state_dir=Path(tmp), with_functions=False, persistent=False)
        with running_stack(options) as stack:
            env = {**os.environ, **stack.env()}
            print(
                f"server: functions-framework/gunicorn WORKERS={env['WORKERS']} THREADS={env['THREADS']}; "
                f"load: 2 processes x 4 keep-alive connections, {SECONDS:.0f} s each, {BATCH} events per request"
            )
            bare_port = free_port()
            bare = ManagedProcess(
                "bare",
                [sys.executable, str(ROOT / "benchmarks" / "_bare_wsgi.py"), str(bare_port)],
                Path(tmp) / "bare.log",
                env=env,
                cwd=ROOT,
            )
            bare.start()
            try:
                bare.wait_ready(lambda: port_answers(bare_port), 30)
                run_load(
                    f"http://127.0.0.1:{bare_port}/", payloads[:20], headers, seconds=2
                )  # warm-up
                assert bare.pid is not None
                ceiling = measure(
                    "ceiling", f"http://127.0.0.1:{bare_port}/", bare.pid, payloads, headers
                )
            finally:
                bare.stop()
            port = free_port()
            ingest = function_process(
                "ingest", ROOT / "functions", port, Path(tmp) / "ingest.log", env
            )
            ingest.start()
            try:
                wait_function(ingest, port)
                url = f"http://127.0.0.1:{port}/v1/events"
                run_load(url, payloads[:20], headers, seconds=2)  # warm-up (lazy clients)
                assert ingest.pid is not None
                measured = measure("ingest", url, ingest.pid, payloads, headers)
            finally:
                ingest.stop()
    print(f"goal: ratio >= 0.5 -> {'met' if measured / ceiling >= 0.5 else 'NOT met'}")
    print(
        f"ingest: {measured:.0f} events/s, ceiling {ceiling:.0f} events/s, ratio {measured / ceiling:.2f}"
    )


if __name__ == "__main__":
    main()
