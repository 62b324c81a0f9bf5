"""Ingest throughput: events/s per core through the real HTTP server, validated and published
to the emulator, side by side with a bare WSGI app under the same server that only parses the
same JSON and answers 202 (the ceiling).

All servers run with the same gunicorn settings (WORKERS=1, THREADS=8 unless set) and take
turns under the same load (batches of 50 realistic events, 2 load processes x 4 keep-alive
connections) for several rounds; the figures compared are the medians, because this machine
is noisy. Two reference functions run beside them (``benchmarks/_ff_floor``):
functions-framework parsing only, and functions-framework publishing the raw body without
any validation, which bounds what any ingest function can reach here. On this 2-core machine the load generator and the Pub/Sub emulator
share the cores with the server, so the figure compared is events per CPU-second of the server's
own processes ("per core"); wall-clock rates and latencies are printed beside it.
Last line: ``ingest: <N> events/s, ceiling <M> events/s, ratio <N/M>`` (per core).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._loadgen import run_load  # noqa: E402
from telemetry_cli.generator import EventGenerator  # noqa: E402
from telemetry_cli.stack.devstack import StackOptions, running_stack  # noqa: E402
from telemetry_cli.stack.functions import function_process  # noqa: E402
from telemetry_cli.stack.process import ManagedProcess, free_port, port_answers  # noqa: E402

BATCH = 50
SECONDS = float(os.environ.get("BENCH_SECONDS", "6"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))


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
    label: str,
    url: str,
    pgid: int,
    payloads: list[bytes],
    headers: dict[str, str],
    per_request: int = BATCH,
    ok_status: int = 202,
    unit: str = "events",
) -> float:
    """Run the load; print wall figures and ``unit`` per server CPU-second; return the latter."""
    cpu_before = group_cpu_seconds(pgid)
    result = run_load(url, payloads, headers, SECONDS)
    cpu = group_cpu_seconds(pgid) - cpu_before
    ok = result.statuses.get(ok_status, 0)
    per_core = ok * per_request / cpu if cpu else float("nan")
    print(
        f"{label:<8} {ok / result.seconds:7.0f} req/s {ok * per_request / result.seconds:8.0f} {unit}/s wall, "
        f"server CPU {cpu:5.2f} s -> {per_core:8.0f} {unit}/s per core; "
        f"p50 {result.percentile(0.5):6.2f} ms p99 {result.percentile(0.99):7.2f} ms; statuses {result.statuses}"
    )
    return per_core


def floor_process(target: str, port: int, tmp: Path, env: dict[str, str]) -> ManagedProcess:
    """A reference function of ``benchmarks/_ff_floor`` under functions-framework."""
    return ManagedProcess(
        target,
        [
            str(ROOT / ".venv" / "bin" / "functions-framework"),
            "--source",
            str(ROOT / "benchmarks" / "_ff_floor" / "main.py"),
            "--target",
            target,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        tmp / f"{target}.log",
        env=env,
        cwd=ROOT,
    )


def start_all(servers: dict[str, tuple[ManagedProcess, str]]) -> None:
    """Start each server and wait until it accepts connections."""
    for proc, url in servers.values():
        proc.start()
        port = int(url.split(":")[2].split("/")[0])
        proc.wait_ready(lambda port=port: port_answers(port), 60)  # type: ignore[misc]


def start_servers(tmp: Path, env: dict[str, str]) -> dict[str, tuple[ManagedProcess, str]]:
    """The four servers, each idle until its turn: the ceiling, two references, ingest."""
    servers: dict[str, tuple[ManagedProcess, str]] = {}
    port = free_port()
    bare = ManagedProcess(
        "bare",
        [sys.executable, str(ROOT / "benchmarks" / "_bare_wsgi.py"), str(port)],
        tmp / "bare.log",
        env=env,
        cwd=ROOT,
    )
    servers["ceiling"] = (bare, f"http://127.0.0.1:{port}/")
    for target in ("parse_only", "publish_only"):
        port = free_port()
        servers[target] = (floor_process(target, port, tmp, env), f"http://127.0.0.1:{port}/")
    port = free_port()
    ingest = function_process("ingest", ROOT / "functions", port, tmp / "ingest.log", env)
    servers["ingest"] = (ingest, f"http://127.0.0.1:{port}/v1/events")
    start_all(servers)
    return servers


def main() -> None:
    os.environ.setdefault("WORKERS", "1")
    os.environ.setdefault("THREADS", "8")
    payloads = bodies()
    headers = {"Content-Type": "text/plain;charset=UTF-8", "Origin": "http://localhost:8000"}
    figures: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        options = StackOptions(state_dir=Path(tmp), with_functions=False, persistent=False)
        with running_stack(options) as stack:
            env = {**os.environ, **stack.env()}
            print(
                f"server: functions-framework/gunicorn WORKERS={env['WORKERS']} THREADS={env['THREADS']}; "
                f"load: 2 processes x 4 keep-alive connections, {SECONDS:.0f} s per turn, "
                f"{BATCH} events per request, {ROUNDS} rounds taking turns"
            )
            servers = start_servers(Path(tmp), env)
            try:
                for _, url in servers.values():
                    run_load(url, payloads[:20], headers, seconds=2)  # warm-up (lazy clients)
                for round_number in range(1, ROUNDS + 1):
                    print(f"round {round_number}")
                    for label, (proc, url) in servers.items():
                        assert proc.pid is not None
                        figures.setdefault(label, []).append(
                            measure(label, url, proc.pid, payloads, headers)
                        )
            finally:
                for proc, _ in servers.values():
                    proc.stop()
    median = {label: statistics.median(values) for label, values in figures.items()}
    ceiling = median["ceiling"]
    print("medians (events per server CPU-second) and ratio to the ceiling:")
    for label, value in median.items():
        print(f"  {label:<13} {value:8.0f}  ratio {value / ceiling:.2f}")
    print(
        "publish_only is functions-framework + publishing the raw body, no validation: "
        "the most any ingest can reach on this server"
    )
    measured = median["ingest"]
    print(f"goal: ratio >= 0.5 -> {'met' if measured / ceiling >= 0.5 else 'NOT met'}")
    print(
        f"ingest: {measured:.0f} events/s, ceiling {ceiling:.0f} events/s, ratio {measured / ceiling:.2f}"
    )


if __name__ == "__main__":
    main()
