"""Operator commands find the local stack: ``.telemetry/dev.json`` of a running ``telemetry dev``.

In a checkout where ``make dev`` runs, ``telemetry dlq`` or ``telemetry sampling status`` in a
second terminal should talk to that stack, not to Google Cloud with no credentials. Unless the
environment already names a deployment (any of :data:`DEPLOYMENT_VARIABLES`, or a
``TELEMETRY_ENV`` other than ``dev``), the endpoints of a live ``telemetry dev`` are put into
this process's environment, and the command says so on stderr.
"""

from __future__ import annotations

import json
import os
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path

from telemetry_cli.stack.devstack import PROJECT_DIR
from telemetry_cli.stack.process import pid_alive

#: Variables that name where a deployment's services are: any one set means "not local".
DEPLOYMENT_VARIABLES = (
    "DATABASE_URL",
    "TELEMETRY_CLOUDSQL_INSTANCE",
    "PUBSUB_EMULATOR_HOST",
    "STORAGE_EMULATOR_HOST",
)
#: dev.json key -> the variable it fills.
_FILLED = {
    "database_url": "DATABASE_URL",
    "pubsub_emulator_host": "PUBSUB_EMULATOR_HOST",
    "storage_emulator_host": "STORAGE_EMULATOR_HOST",
    "project": "GOOGLE_CLOUD_PROJECT",
    "bucket": "TELEMETRY_BUCKET",
    "topic": "TELEMETRY_TOPIC",
    "archive_kek": "TELEMETRY_ARCHIVE_KEK",
}


@dataclass(frozen=True)
class LocalStack:
    """A running ``telemetry dev`` found through its dev.json."""

    path: Path
    pid: int
    variables: dict[str, str]

    def describe(self) -> str:
        """One line for stderr: which stack a command uses."""
        return f"using the local stack of `telemetry dev` (pid {self.pid}) from {self.path}"


def dev_json_candidates() -> list[Path]:
    """Where a ``telemetry dev`` of this checkout writes its endpoints: under the current
    folder first (``--state-dir``'s default when run from a checkout), then this checkout's."""
    return list(dict.fromkeys(d / ".telemetry" / "dev.json" for d in (Path.cwd(), PROJECT_DIR)))


def find_local_stack(path: Path | None = None) -> LocalStack | None:
    """The stack a live ``telemetry dev`` described (in ``path``, or the usual places)."""
    for candidate in [path] if path else dev_json_candidates():
        stack = _read_stack(candidate)
        if stack is not None:
            return stack
    return None


def _read_stack(path: Path) -> LocalStack | None:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    pid = info.get("pid")
    if not isinstance(pid, int) or not pid_alive(pid):
        return None
    variables = {
        name: str(info[key]) for key, name in _FILLED.items() if isinstance(info.get(key), str)
    }
    return LocalStack(path, pid, variables)


def use_local_stack(
    environ: MutableMapping[str, str] | None = None, path: Path | None = None
) -> LocalStack | None:
    """Point ``environ`` at a running local stack unless it names a deployment already."""
    env = os.environ if environ is None else environ
    if env.get("TELEMETRY_ENV", "dev") != "dev" or any(env.get(v) for v in DEPLOYMENT_VARIABLES):
        return None
    stack = find_local_stack(path)
    if stack is None:
        return None
    for name, value in stack.variables.items():
        env.setdefault(name, value)
    return stack
