"""Start-up time of `telemetry dev` until dev.json is written: cold (new state) and warm.

Cold: a state directory never used before (PostgreSQL runs initdb, emulators start empty).
Warm: the same state directory again right after a clean stop (data directory kept).
Each run is stopped with SIGTERM and its stop time is printed too.
Last line: ``startup: cold <N> s, warm <M> s``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TELEMETRY = str(Path(sys.executable).parent / "telemetry")
RUNS_WARM = 3


def one_run(state: Path) -> tuple[float, float]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "PUBSUB_EMULATOR_HOST", "STORAGE_EMULATOR_HOST")
    }
    started = time.monotonic()
    proc = subprocess.Popen(
        [TELEMETRY, "dev", "--state-dir", str(state)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    info_path = state / "dev.json"
    while not info_path.exists():
        if proc.poll() is not None:
            raise SystemExit(f"telemetry dev failed: {proc.stderr.read() if proc.stderr else ''}")
        time.sleep(0.02)
    ready = time.monotonic() - started
    json.loads(info_path.read_text())
    stop_started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    return ready, time.monotonic() - stop_started


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="telemetry-bench-startup-"))
    state = root / "state"
    try:
        cold, cold_stop = one_run(state)
        print(f"cold start {cold:.2f} s (stop {cold_stop:.2f} s)")
        warm_runs = []
        for i in range(RUNS_WARM):
            warm, warm_stop = one_run(state)
            warm_runs.append(warm)
            print(f"warm start #{i + 1} {warm:.2f} s (stop {warm_stop:.2f} s)")
        warm = sorted(warm_runs)[len(warm_runs) // 2]
        verdict = "met" if warm < 20 else "NOT met"
        print(f"goal: warm start under 20 s -> {verdict} (median of {RUNS_WARM})")
        print(f"startup: cold {cold:.1f} s, warm {warm:.1f} s")
    finally:
        from telemetry_cli.stack.postgres import default_data_dir

        shutil.rmtree(default_data_dir(state, "dev"), ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
