"""Child processes of the stack: each in its own process group, logged to a file, stoppable."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from telemetry_cli.stack.errors import StackError


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on ``host:port`` and a server could bind it.

    ``SO_REUSEADDR`` is set, as servers set it, so connections lingering in TIME_WAIT after a
    stop do not count as the port being taken.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def port_answers(port: int, host: str = "127.0.0.1") -> bool:
    """True when a TCP connection to ``host:port`` succeeds."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def http_ok(url: str, expect: str | None = None) -> bool:
    """True when ``url`` answers (any status), and its body holds ``expect`` if given."""
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - local URLs
            body = response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError:
        return expect is None
    except (OSError, ValueError):
        return False
    return expect is None or expect in body


class StartInterrupted(BaseException):
    """The stack was asked to stop (SIGTERM, Ctrl-C) while it was starting."""


class ManagedProcess:
    """A child process in its own session, its output in a log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_file: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_file = log_file
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None
        #: Set when the stack must stop: a wait for readiness gives up at once.
        self.interrupt: threading.Event | None = None

    def start(self) -> None:
        """Start the process (in a new session, so its whole group can be stopped)."""
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_file.open("ab")
        try:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        except OSError as exc:
            raise StackError(
                f"{self.name} could not start: {exc.strerror} ({self.argv[0]})", str(self.log_file)
            ) from None
        finally:
            log.close()

    @property
    def pid(self) -> int | None:
        """The process id (also its process group id)."""
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, check: Callable[[], bool], timeout: float) -> None:
        """Wait until ``check()`` is true; a clear error if the process dies or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.interrupt is not None and self.interrupt.is_set():
                raise StartInterrupted(f"stopping while {self.name} was starting")
            if not self.alive():
                code = self.proc.returncode if self.proc else None
                raise StackError(
                    f"{self.name} exited with code {code} while starting", str(self.log_file)
                )
            if check():
                return
            time.sleep(0.05)
        raise StackError(f"{self.name} was not ready within {timeout:.0f} s", str(self.log_file))

    def stop(self, timeout: float = 4.0) -> None:
        """SIGTERM the whole group, then SIGKILL what is left after ``timeout``."""
        if self.proc is None:
            return
        pgid = self.proc.pid
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout)
        # Children of the leader (a Java child of a wrapper, gunicorn workers) may outlive it.
        deadline = time.monotonic() + 1.0
        while group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(2)


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """``(state, pgid)`` of a process from /proc, or None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[2])


def start_ticks(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot): with the pid, it names one process,
    never a later one that reused the number."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(raw[raw.rindex(")") + 2 :].split()[19])


def stop_leftover(pid: int, ticks: int | None, signum: int, grace_s: float, group: bool) -> bool:
    """Stop a process (or its group) an earlier run left, if it is still that very process:
    ``signum``, then SIGKILL after ``grace_s``. True when something was stopped."""
    if ticks is None or start_ticks(pid) != ticks:
        return False
    kill = os.killpg if group else os.kill
    try:
        kill(pid, signum)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            if not (group_alive(pid) if group else pid_alive(pid)):
                return True
            time.sleep(0.05)
        kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped counts as gone)."""
    stat = _proc_stat(pid)
    return stat is not None and stat[0] != "Z"


def group_alive(pgid: int) -> bool:
    """True while any live (non-zombie) process belongs to the group ``pgid``."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _proc_stat(int(entry.name))
            if stat is not None and stat[1] == pgid and stat[0] != "Z":
                return True
    return False
