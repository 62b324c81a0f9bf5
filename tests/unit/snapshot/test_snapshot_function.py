"""The snapshot function's adapter, with the snapshotter faked (integration tests run it for real)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from functions_framework import create_app

from shared.errors import ServiceUnavailable, TerminalError
from shared.storage.warm import compaction
from shared.storage.warm.catalog import SnapshotAlreadyRunning
from shared.storage.warm.snapshot import TableRun

SOURCE = Path(__file__).resolve().parents[3] / "functions" / "snapshot" / "main.py"


class FakeSnapshotter:
    def __init__(self) -> None:
        self.calls: list[tuple[list[str], bool]] = []
        self.fail: Exception | None = None

    def run(self, tables: list[str], dry_run: bool = False) -> list[TableRun]:
        if self.fail is not None:
            raise self.fail
        self.calls.append((tables, dry_run))
        run = TableRun(tables[0], 0, 10, dry_run=dry_run, planned=[(date(2026, 11, 28), 3)])
        return [run]


@pytest.fixture
def client_and_fake() -> Iterator[tuple[Any, FakeSnapshotter]]:
    app = create_app(target="snapshot", source=str(SOURCE))
    import main as snapshot_main  # the module functions-framework loaded

    fake = FakeSnapshotter()
    snapshot_main._snapshotter = fake
    yield app.test_client(), fake
    snapshot_main.reset()


def test_a_run_answers_what_each_table_wrote(client_and_fake) -> None:
    client, fake = client_and_fake
    response = client.post("/", data=json.dumps({"tables": ["api_calls_log"], "dry_run": True}))
    assert response.status_code == 200
    (table,) = response.get_json()["tables"]
    assert table["table"] == "api_calls_log" and table["dry_run"] is True and table["rows"] == 3
    assert fake.calls == [(["api_calls_log"], True)]
    assert client.post("/", data=b"").status_code == 200
    assert fake.calls[-1] == (["telemetry_events", "api_calls_log"], False)


@pytest.mark.parametrize(
    ("method", "body", "status", "fragment"),
    [
        ("GET", b"", 405, "use POST"),
        ("POST", b"{", 400, "not JSON"),
        ("POST", b"[]", 400, "body: Expected `object`, got `array`"),
        ("POST", b'{"tables": "telemetry_events"}', 400, "body.tables: Expected `array | null`"),
        ("POST", b'{"tables": ["users"]}', 400, "body.tables[0]: Invalid enum value 'users'"),
        ("POST", b'{"dry_run": 1}', 400, "body.dry_run: Expected `bool`, got `int`"),
    ],
)
def test_bad_requests_say_what_is_wrong(client_and_fake, method, body, status, fragment) -> None:
    client, fake = client_and_fake
    response = client.open("/", method=method, data=body)
    assert response.status_code == status
    assert fragment in response.get_json()["error"]
    assert fake.calls == []


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (SnapshotAlreadyRunning("a snapshot of api_calls_log is already running"), 409),
        (ServiceUnavailable("GCS does not answer (ConnectionError)", "gcs"), 503),
        (TerminalError("the export differs"), 500),
        (RuntimeError("a bug"), 500),
    ],
)
def test_failures_map_to_statuses_and_record_nothing(client_and_fake, error, status) -> None:
    client, fake = client_and_fake
    fake.fail = error
    response = client.post("/", data=b"{}")
    assert response.status_code == status
    assert response.get_json()["error"]
    if status == 503:
        assert response.headers["Retry-After"] == "60"


def test_the_snapshotter_is_built_lazily_once(monkeypatch: pytest.MonkeyPatch) -> None:
    create_app(target="snapshot", source=str(SOURCE))
    import main as snapshot_main

    from shared.storage.gcs import reset_storage_client
    from shared.storage.hot.engine import dispose_engine

    monkeypatch.setenv("DATABASE_URL", "postgresql+pg8000://nobody@127.0.0.1:1/none")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:9")
    snapshot_main.reset()
    reset_storage_client()
    try:
        built = snapshot_main.get_snapshotter()  # nothing connects yet
        assert built is snapshot_main.get_snapshotter()
        assert built.bucket.name == built.settings.telemetry_bucket
    finally:
        snapshot_main.reset()
        reset_storage_client()
        dispose_engine()


def test_compact_runs_compaction_and_deletes_retired(client_and_fake, monkeypatch) -> None:

    client, fake = client_and_fake
    fake.settings, fake.engine, fake.bucket = object(), object(), object()
    merged: list[str] = []

    class Merge:
        object_name, inputs, rows = "m.parquet", ["a", "b"], 7

    def compact(settings, engine, bucket, table):
        merged.append(table)
        return [Merge()]

    monkeypatch.setattr(compaction, "compact", compact)
    monkeypatch.setattr(compaction, "delete_retired", lambda engine, bucket: 2)
    response = client.post("/", data=json.dumps({"compact": True, "tables": ["api_calls_log"]}))
    assert response.status_code == 200
    assert response.get_json() == {"merged": [{"object": "m.parquet", "inputs": 2, "rows": 7}]}
    assert merged == ["api_calls_log"] and fake.calls == []
