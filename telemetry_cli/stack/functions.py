"""The project's functions, each run by functions-framework as a real HTTP server."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from shared.errors import StackError
from telemetry_cli.stack.process import ManagedProcess, port_answers


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


def function_process(
    name: str, functions_dir: Path, port: int, log_file: Path, env: Mapping[str, str]
) -> ManagedProcess:
    """One function as a managed process (not started)."""
    source = functions_dir / name / "main.py"
    return ManagedProcess(
        f"function {name}",
        [
            str(functions_framework_bin()),
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
