"""`telemetry dev` (what `make dev` runs) always stops everything it started within 10 s of
SIGTERM, whenever the signal comes (during start-up too), and a start after a killed run stops
what that run left, PostgreSQL included."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from telemetry_cli.stack.postgres import default_data_dir
from telemetry_cli.stack.process import pid_alive, start_ticks

pytestmark = pytest.mark.integration

SEED = 20261128
CYCLES = 20
ARGS = ["--snapshot-every", "0", "--anomaly-every", "0", "--no-report"]


def _children() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                raw = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(raw[raw.rindex(")") + 2 :].split()[1])
            out.setdefault(ppid, []).append(int(entry.name))
    return out


class Watcher:
    """Every process the run starts (its descendants, seen every 50 ms), with its start time."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.seen: dict[int, int | None] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            children = _children()
            stack = [self.root]
            while stack:
                for child in children.get(stack.pop(), []):
                    if child not in self.seen:
                        self.seen[child] = start_ticks(child)
                    stack.append(child)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def alive(self) -> list[int]:
        return [
            p
            for p, t in self.seen.items()
            if t is not None and start_ticks(p) == t and pid_alive(p)
        ]


def postgres_of(state: Path) -> list[int]:
    data = str(default_data_dir(state, "dev"))
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if "postgres" in cmdline and data in cmdline and pid_alive(int(entry.name)):
                found.append(int(entry.name))
    return found


def start(state: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "telemetry_cli.cli", "dev", "--state-dir", str(state), *ARGS],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env={
            k: v
            for k, v in os.environ.items()
            if k not in ("DATABASE_URL", "PUBSUB_EMULATOR_HOST", "STORAGE_EMULATOR_HOST")
        },
    )


def wait_ready(state: Path, pid: int, log: Path) -> None:
    """Until this run wrote dev.json (a killed run leaves its own behind)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if json.loads((state / "dev.json").read_text())["pid"] == pid:
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.1)
    pytest.fail(f"run {pid} never became ready: {log.read_text()[-2000:]}")


def light_load(state: Path) -> None:
    info = json.loads((state / "dev.json").read_text())
    body = json.dumps(
        {
            "context": {"session_id": "s-stop"},
            "events": [
                {
                    "event_id": str(uuid.uuid4()),
                    "name": "node.expand",
                    "ts": datetime.now(UTC).isoformat(),
                    "props": {"node_id": "n-1"},
                }
            ],
        }
    ).encode()
    request = urllib.request.Request(
        info["ingest_url"], data=body, headers={"Content-Type": "text/plain"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 202


def test_sigterm_at_any_moment_stops_everything_within_10_s(
    tmp_path: Path, dev_state: Path
) -> None:
    rng = random.Random(SEED)
    state, log = dev_state, tmp_path / "dev.log"
    for cycle in range(CYCLES):
        delay = rng.uniform(0.3, 6.5)  # start-up takes about 5 s: before, during and after it
        proc = start(state, log)
        watcher = Watcher(proc.pid)
        deadline = time.monotonic() + delay
        loaded = False
        while time.monotonic() < deadline:
            if not loaded and (state / "dev.json").exists():
                light_load(state)
                loaded = True
            time.sleep(0.05)
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail(
                f"cycle {cycle} (seed {SEED}, SIGTERM after {delay:.1f} s) did not stop within 10 s; see {log}"
            )
        took = time.monotonic() - signalled
        time.sleep(0.2)
        watcher.stop()
        left = watcher.alive()
        assert left == [], (
            f"cycle {cycle}: {len(left)} processes left after SIGTERM at {delay:.1f} s"
        )
        assert postgres_of(state) == [], f"cycle {cycle}: PostgreSQL left running"
        assert not (state / "dev.json").exists() and not (state / "owned.json").exists()
        assert took < 10


def test_a_start_after_a_killed_run_stops_what_it_left(tmp_path: Path, dev_state: Path) -> None:
    state, log = dev_state, tmp_path / "dev.log"
    first = start(state, log)
    watcher = Watcher(first.pid)
    wait_ready(state, first.pid, log)
    first.kill()  # kill -9: no clean-up at all
    first.wait(10)
    watcher.stop()
    assert watcher.alive() and postgres_of(state)  # left behind, as a killed run leaves them
    second = start(state, log)
    try:
        wait_ready(state, second.pid, log)
        left = watcher.alive()
        names = [Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ")[:120] for p in left]
        assert left == [], names  # the first run's functions and emulators are gone
        info = json.loads((state / "dev.json").read_text())
        running = postgres_of(state)
        assert info["postgres_pid"] in running  # the new run's server, the old one stopped
        assert all(p not in watcher.seen or start_ticks(p) != watcher.seen[p] for p in running)
        light_load(state)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(10)
    assert postgres_of(state) == []


def _function_pid(name: str, port: int) -> int | None:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            pid = int(entry.name)
            ours = b"--target" in argv and name.encode() in argv and str(port).encode() in argv
            if ours and pid_alive(pid) and os.getpgid(pid) == pid:
                return pid
    return None


def test_a_crashed_function_is_started_again_and_nothing_is_lost(
    tmp_path: Path, dev_state: Path
) -> None:
    """kill -9 of the sink (a crashed instance): `telemetry dev` starts it again on its port,
    as Cloud Run starts a new instance, and the events sent meanwhile are stored."""
    from urllib.parse import urlparse

    from sqlalchemy import text

    from shared.storage.hot.engine import make_engine

    state, log = dev_state, tmp_path / "dev.log"
    proc = start(state, log)
    try:
        wait_ready(state, proc.pid, log)
        info = json.loads((state / "dev.json").read_text())
        port = urlparse(info["functions"]["sink"]).port
        assert port is not None
        old = _function_pid("sink", port)
        assert old is not None
        os.killpg(old, signal.SIGKILL)
        light_load(state)  # while the sink is down: the relay keeps it for the new instance
        deadline = time.monotonic() + 30
        new = None
        while time.monotonic() < deadline and new in (None, old):
            new = _function_pid("sink", port)
            time.sleep(0.2)
        assert new not in (None, old), log.read_text()[-2000:]
        assert "function sink exited; started it again" in log.read_text()
        engine = make_engine(info["database_url"])
        stored = 0
        while time.monotonic() < deadline + 30 and stored == 0:
            with engine.connect() as conn:
                stored = conn.execute(
                    text("SELECT count(*) FROM telemetry_events WHERE session_id = 's-stop'")
                ).scalar_one()
            time.sleep(0.3)
        engine.dispose()
        assert stored == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
