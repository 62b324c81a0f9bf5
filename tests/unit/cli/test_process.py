from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import pytest

from telemetry_cli.stack.errors import StackError
from telemetry_cli.stack.functions import discover_functions
from telemetry_cli.stack.process import (
    ManagedProcess,
    free_port,
    group_alive,
    http_ok,
    pid_alive,
    port_answers,
    port_is_free,
)


def test_missing_binary_is_a_stack_error(tmp_path: Path) -> None:
    proc = ManagedProcess("ghost", [str(tmp_path / "nope")], tmp_path / "ghost.log")
    with pytest.raises(StackError, match="ghost could not start") as info:
        proc.start()
    assert info.value.log_file == str(tmp_path / "ghost.log")


def test_process_dying_while_starting_names_its_log(tmp_path: Path) -> None:
    proc = ManagedProcess(
        "quitter", [sys.executable, "-c", "print('bye'); raise SystemExit(3)"], tmp_path / "q.log"
    )
    proc.start()
    with pytest.raises(StackError, match="quitter exited with code 3 while starting"):
        proc.wait_ready(lambda: False, timeout=10)
    assert "bye" in (tmp_path / "q.log").read_text()


def test_not_ready_in_time_and_stop_kills_the_whole_group(tmp_path: Path) -> None:
    script = "import subprocess,sys,time; subprocess.Popen([sys.executable,'-c','import time; time.sleep(60)']); time.sleep(60)"
    proc = ManagedProcess("sleeper", [sys.executable, "-c", script], tmp_path / "s.log")
    proc.start()
    with pytest.raises(StackError, match="not ready within"):
        proc.wait_ready(lambda: False, timeout=0.3)
    time.sleep(0.3)
    assert proc.pid is not None and group_alive(proc.pid)
    proc.stop(timeout=2)
    assert not proc.alive()
    assert not group_alive(proc.pid)
    assert not pid_alive(proc.pid)


def test_ignoring_sigterm_gets_killed(tmp_path: Path) -> None:
    script = "import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"
    proc = ManagedProcess("stubborn", [sys.executable, "-c", script], tmp_path / "x.log")
    proc.start()
    proc.wait_ready(lambda: "up" in (tmp_path / "x.log").read_text(), timeout=10)
    started = time.monotonic()
    proc.stop(timeout=0.5)
    assert not proc.alive()
    assert time.monotonic() - started < 5


def test_ports_and_http_checks() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert not port_is_free(port)
        assert port_answers(port)
    port = free_port()
    assert port_is_free(port)
    assert not port_answers(port)
    assert not http_ok(f"http://127.0.0.1:{port}/")
    assert not http_ok("not a url")


def test_discover_functions(tmp_path: Path) -> None:
    assert discover_functions(tmp_path / "missing") == []
    for name in ("sink", "ingest"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "main.py").write_text("")
    (tmp_path / "notes").mkdir()
    assert discover_functions(tmp_path) == ["ingest", "sink"]
