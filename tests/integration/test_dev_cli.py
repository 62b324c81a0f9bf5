"""`telemetry dev` as a user runs it: starts, writes dev.json, stops cleanly, fails clearly."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from telemetry_cli.stack.process import group_alive, pid_alive, port_is_free
from tests.integration.conftest import remove_dev_postgres

pytestmark = pytest.mark.integration
TELEMETRY = str(Path(sys.executable).parent / "telemetry")
CLEAN_ENV = {
    k: v
    for k, v in os.environ.items()
    if k not in ("DATABASE_URL", "PUBSUB_EMULATOR_HOST", "STORAGE_EMULATOR_HOST")
}


@pytest.fixture(autouse=True)
def _remove_postgres_data(tmp_path: Path) -> Iterator[None]:
    """`telemetry dev` keeps PostgreSQL's data under /tmp per state folder: remove this test's."""
    yield
    remove_dev_postgres(tmp_path / "state", tmp_path / "checkout" / ".telemetry")


def start_dev(state: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [TELEMETRY, "dev", "--state-dir", str(state), *args],
        env=env or CLEAN_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_info(proc: subprocess.Popen[str], state: Path, timeout: float = 90) -> dict:
    path = state / "dev.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return json.loads(path.read_text())
        if proc.poll() is not None:
            raise AssertionError(f"telemetry dev exited early: {proc.communicate()}")
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("dev.json was not written in time")


def processes_mentioning(text: str) -> list[str]:
    out = subprocess.run(
        ["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True
    ).stdout
    return [line for line in out.splitlines() if text in line and "ps -eo" not in line]


def assert_all_gone(info: dict, state: Path) -> None:
    for pgid in info["child_pgids"]:
        assert not group_alive(pgid), f"process group {pgid} survived"
    if info["postgres_pid"]:
        assert not pid_alive(info["postgres_pid"]), "postgres survived"
    for host in (info["pubsub_emulator_host"], info["storage_emulator_host"].split("//")[1]):
        port = int(host.rsplit(":", 1)[1])
        assert port_is_free(port), f"port {port} is still bound"
    assert processes_mentioning(str(state)) == []


def test_dev_starts_writes_endpoints_and_stops_everything_on_sigterm(tmp_path: Path) -> None:
    state = tmp_path / "state"
    tokens = set()
    for _attempt in range(2):  # starting again right after a stop works
        proc = start_dev(state)
        info = wait_for_info(proc, state)
        tokens.add(info["otlp_token"])
        for key in (
            "ingest_url",
            "database_url",
            "pubsub_emulator_host",
            "storage_emulator_host",
            "bucket",
            "allowed_origins",
            "functions",
            "log_dir",
        ):
            assert key in info, key
        assert info["pid"] == proc.pid
        assert info["allowed_origins"] == ["http://localhost:8000", "http://127.0.0.1:8000"]
        assert Path(info["log_dir"], "pubsub-emulator.log").exists()
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
        assert time.monotonic() - started < 10, "stopping took 10 s or more"
        assert proc.returncode == 0, err
        assert "local stack ready" in out
        assert not (state / "dev.json").exists()
        assert_all_gone(info, state)
    assert len(tokens) == 1 and next(iter(tokens)).startswith("dev-otlp-")  # kept across restarts
    assert (state / "otlp-token").stat().st_mode & 0o777 == 0o600


def test_dev_stops_on_ctrl_c(tmp_path: Path) -> None:
    state = tmp_path / "state"
    proc = start_dev(state, "--no-functions")
    info = wait_for_info(proc, state)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=15)
    assert proc.returncode == 0
    assert_all_gone(info, state)


def test_taken_port_is_one_clear_line_and_nothing_runs(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        proc = start_dev(state, "--gcs-port", str(port))
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert lines == [
        f"error: port {port} for the GCS emulator is already in use (see {state / 'logs'})"
    ]
    time.sleep(0.5)
    assert processes_mentioning(str(state)) == []


def test_missing_java_is_named(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = {**CLEAN_ENV, "PATH": str(tmp_path / "empty-bin")}
    proc = start_dev(state, env=env)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "error: Java is missing: the Pub/Sub emulator needs a Java 11+ runtime" in err
    assert "pubsub-emulator.log" in err
    assert processes_mentioning(str(state)) == []


def test_bad_database_url_stops_what_was_started(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = {**CLEAN_ENV, "DATABASE_URL": "mysql://user@localhost/db"}
    proc = start_dev(state, "--no-functions", env=env)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "error: DATABASE_URL uses driver 'mysql'; expected postgresql+pg8000" in err
    time.sleep(0.5)
    assert processes_mentioning(str(state)) == []


def test_unreachable_emulator_is_named(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = {**CLEAN_ENV, "PUBSUB_EMULATOR_HOST": "127.0.0.1:9"}
    proc = start_dev(state, "--no-functions", env=env)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "error: PUBSUB_EMULATOR_HOST=127.0.0.1:9 does not answer" in err
    time.sleep(0.5)
    assert processes_mentioning(str(state)) == []


def test_operator_commands_find_the_local_stack_beside_telemetry_dev(tmp_path: Path) -> None:
    """Regression: with `make dev` running, `telemetry dlq` in a second terminal ended in a
    DefaultCredentialsError traceback and `telemetry sampling status` in "cannot read the
    runtime flags"; both now use the stack's endpoints from .telemetry/dev.json."""
    checkout = tmp_path / "checkout"
    state = checkout / ".telemetry"
    proc = start_dev(state, "--no-functions")
    try:
        info = wait_for_info(proc, state)
        env = {k: v for k, v in CLEAN_ENV.items() if k not in ("GOOGLE_CLOUD_PROJECT",)}
        for args, expect in (
            (["dlq"], "0 messages, 0 events in telemetry-events-dlq-hold"),
            (["sampling", "status"], '"sampling_override": false'),
            (["migrate"], "migrations applied"),
        ):
            done = subprocess.run(
                [TELEMETRY, *args],
                cwd=checkout,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert done.returncode == 0, (args, done.stderr)
            assert expect in done.stdout, (args, done.stdout)
            assert f"using the local stack of `telemetry dev` (pid {info['pid']})" in done.stderr
            assert "Traceback" not in done.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=15)
    after = subprocess.run(
        [TELEMETRY, "dlq"],
        cwd=checkout,
        env=CLEAN_ENV,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert after.returncode == 1 and "Traceback" not in after.stderr
    lines = [line for line in after.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: no Google credentials"), lines
