"""The project's functions, each run by functions-framework as a real HTTP server."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

from telemetry_cli.stack.errors import StackError
from telemetry_cli.stack.process import ManagedProcess, free_port, port_answers

#: The project's functions, ``functions/<name>/main.py`` each.
FUNCTIONS_DIR = Path(__file__).resolve().parents[2] / "functions"


def discover_functions(functions_dir: Path) -> list[str]:
    """Names of the functions that exist (``functions/<name>/main.py``), sorted."""
    if not functions_dir.is_dir():
        return []
    return sorted(p.parent.name for p in functions_dir.glob("*/main.py"))


def functions_framework_bin() -> Path:
    """The functions-framework launcher of this environment."""
    candidate = Path(sys.executable).parent / "functions-framework"
    if not candidate.exists():
        raise StackError(
            "functions-framework is not installed in this environment; run `make setup`"
        )
    return candidate


#: A function's process name: this prefix and the function's name.
FUNCTION_PREFIX = "function "


def function_process(
    name: str,
    functions_dir: Path,
    port: int,
    log_file: Path,
    env: Mapping[str, str],
    launcher: Path | None = None,
) -> ManagedProcess:
    """One function as a managed process (not started); ``launcher`` is another environment's
    functions-framework (a bundle's own, say) instead of this one's."""
    source = functions_dir / name / "main.py"
    return ManagedProcess(
        f"{FUNCTION_PREFIX}{name}",
        [
            str(launcher or functions_framework_bin()),
            "--source",
            str(source),
            "--target",
            name,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        log_file,
        env=env,
        cwd=functions_dir.parent,
    )


def wait_function(proc: ManagedProcess, port: int, timeout: float = 60) -> None:
    """Wait until the function's server accepts connections."""
    proc.wait_ready(lambda: port_answers(port), timeout)


@contextlib.contextmanager
def running_function(
    name: str, env: Mapping[str, str], log_dir: Path, port: int | None = None
) -> Iterator[str]:
    """Run ``functions/<name>`` under functions-framework for a block; yields its base URL."""
    port = port or free_port()
    proc = function_process(
        name, FUNCTIONS_DIR, port, log_dir / f"{name}-{port}.log", {**os.environ, **env}
    )
    proc.start()
    try:
        wait_function(proc, port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stop()
