"""Local files of the warm tier's jobs: private per run, and a local failure named as one.

Regression tests for a fixed, shared ``<tmp>/telemetry-snapshot`` folder: the first user to run a
snapshot owned it, every other user's snapshot then failed, and the failure was answered as a
PostgreSQL outage (503, retried forever)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from shared.storage import scratch
from shared.storage.hot.writer import write_events
from tests.integration.tiers import Warm

pytestmark = pytest.mark.integration

PROJECT_DIR = Path(__file__).resolve().parents[2]

EXPORTER = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
from shared.contract.registry import default_registry
from shared.settings import get_settings
from shared.storage.warm import export
from shared.storage.warm.columns import warm_columns

handshake = Path({handshake!r})
piece = export.DaySlice("telemetry_events", __import__("datetime").date.fromisoformat({day!r}),
                        0, 1 << 62)
columns = warm_columns("telemetry_events", default_registry())
with export.workspace(get_settings()) as space:
    path = space.local_path({name!r})
    (handshake / f"ready-{{sys.argv[1]}}").write_text(str(path))
    while not (handshake / "go").exists():  # both processes hold their workspace now
        time.sleep(0.01)
    export.export_slice(space.con, piece, columns, path)
    rows = space.con.execute(f"SELECT count(*) FROM read_parquet('{{path}}')").fetchone()[0]
    print(json.dumps({{"path": str(path), "rows": rows, "mode": path.parent.stat().st_mode & 0o777}}))
"""


def test_two_snapshot_exports_at_once_as_two_processes_never_share_a_file(
    warm: Warm, make_events, tmp_path: Path
) -> None:
    events = make_events(40)
    write_events(warm.engine, events)
    name = "analytics/telemetry_events/event_date=2026-11-22/telemetry_events-0-802.parquet"
    code = EXPORTER.format(
        root=str(PROJECT_DIR),
        handshake=str(tmp_path),
        day=events[0].event_ts.date().isoformat(),
        name=name,
    )
    env = {**os.environ, "DATABASE_URL": warm.settings.database_url.get_secret_value()}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(i)], env=env, stdout=subprocess.PIPE, text=True
        )
        for i in (1, 2)
    ]
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"ready-{i}").exists() for i in (1, 2)):
        assert time.monotonic() < deadline, "the exporters never got ready"
        assert all(c.poll() is None for c in children), "an exporter died"
        time.sleep(0.01)
    (tmp_path / "go").touch()
    outputs = []
    for child in children:
        out, _ = child.communicate(timeout=120)
        assert child.returncode == 0
        outputs.append(json.loads(out))
    first, second = outputs
    assert first["path"] != second["path"]
    assert Path(first["path"]).name == Path(second["path"]).name == Path(name).name
    assert first["rows"] == second["rows"] == 40  # neither file was written over by the other
    assert first["mode"] == second["mode"] == 0o700
    assert not Path(first["path"]).parent.exists() and not Path(second["path"]).parent.exists()


@contextlib.contextmanager
def unwritable_folder(path: Path) -> Iterator[Path]:
    """A folder this process cannot create anything in. Root ignores file modes, so for root
    the folder is made immutable (``chattr +i``, which binds root too); for anyone else its
    mode is read and search only."""
    path.mkdir()
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(path)], check=True)
    else:
        path.chmod(0o500)
    try:
        with pytest.raises(PermissionError):
            (path / "probe").touch()
        yield path
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        else:
            path.chmod(0o700)


def test_an_unwritable_temp_folder_gives_the_clear_local_error_not_a_503_naming_postgresql(
    warm: Warm, make_events, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions_framework import create_app

    from shared.settings import reset_settings
    from shared.storage.hot.engine import dispose_engine

    write_events(warm.engine, make_events(6))
    monkeypatch.setenv("DATABASE_URL", warm.settings.database_url.get_secret_value())
    monkeypatch.setenv("TELEMETRY_BUCKET", warm.settings.telemetry_bucket)
    reset_settings()
    dispose_engine()
    app = create_app(target="snapshot", source=str(PROJECT_DIR / "functions/snapshot/main.py"))
    import main as snapshot_main  # the module functions-framework loaded

    snapshot_main.reset()
    client = app.test_client()
    try:
        with unwritable_folder(tmp_path / "tmp") as folder:
            monkeypatch.setattr(tempfile, "tempdir", str(folder))
            monkeypatch.setattr(scratch, "_process_folder", None)
            answer = client.post("/", json={"tables": ["telemetry_events"]})
        body = answer.get_json()
        assert answer.status_code == 500, body
        assert "Retry-After" not in answer.headers
        assert str(folder) in body["error"] and "PostgreSQL" not in body["error"]
        assert "Operation not permitted" in body["error"] or "Permission denied" in body["error"]
        with warm.engine.connect() as conn:  # nothing recorded; the range waits, pending
            states = conn.execute(text("SELECT state FROM snapshot_runs")).scalars().all()
        assert states == ["pending"]
        monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
        monkeypatch.setattr(scratch, "_process_folder", None)
        resumed = client.post("/", json={"tables": ["telemetry_events"]})  # writable again
        assert resumed.status_code == 200
        (table,) = resumed.get_json()["tables"]
        assert table["resumed"] is True and table["rows"] == 6
    finally:
        snapshot_main.reset()
        dispose_engine()
