"""The lifecycle function's adapter, its collaborators faked (integration tests run it for real)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from functions_framework import create_app

from shared.errors import ServiceUnavailable, TerminalError
from shared.settings import load_settings
from shared.storage.erasure import ErasureRequest, ErasureRunning, UnknownRequest
from shared.storage.retention import RetentionReport
from shared.storage.retention_item import RetentionItem

SOURCE = Path(__file__).resolve().parents[3] / "functions" / "lifecycle" / "main.py"


class FakeEraser:
    def __init__(self, fail: Exception | None) -> None:
        self.fail = fail
        self.ran: list[str] = []

    def _request(self, request_id: str = "er-" + "1" * 20) -> ErasureRequest:
        return ErasureRequest(request_id, ["k"], 1, "done", {"hot": {"telemetry_events": 2}})

    def erase(self, user_ids: Any) -> ErasureRequest:
        if self.fail is not None:
            raise self.fail
        return self._request()

    def status(self, request_id: str) -> ErasureRequest:
        return self._request(request_id)

    def unfinished(self) -> list[str]:
        return ["er-" + "2" * 20]

    def run(self, request_id: str) -> ErasureRequest:
        self.ran.append(request_id)
        return self._request(request_id)


class FakeRetention:
    def __init__(self) -> None:
        self.dry: list[bool] = []

    def run(self, dry_run: bool = False) -> RetentionReport:
        self.dry.append(dry_run)
        report = RetentionReport(date(2026, 11, 28), dry_run)
        report.items.append(RetentionItem("hot", "telemetry_events_p20261027", "drop", "old", 3))
        return report


class FakeLifecycle:
    def __init__(self) -> None:
        self.fail: Exception | None = None
        self.eraser_ = FakeEraser(None)
        self.retention_ = FakeRetention()
        self.settings = load_settings()
        self.alert: Any = None

    def eraser(self) -> FakeEraser:
        self.eraser_.fail = self.fail
        return self.eraser_

    def retention(self, alert: Any = None) -> FakeRetention:
        self.alert = alert  # the function chooses where retention's alerts go
        return self.retention_


@pytest.fixture
def client_and_fake() -> Iterator[tuple[Any, FakeLifecycle]]:
    app = create_app(target="lifecycle", source=str(SOURCE))
    import main as lifecycle_main  # the module functions-framework loaded

    fake = FakeLifecycle()
    lifecycle_main._lifecycle = fake
    yield app.test_client(), fake
    lifecycle_main.reset()


def test_retention_reports_items_and_resumes_unfinished_erasures(client_and_fake) -> None:
    client, fake = client_and_fake
    answer = client.post("/", data=json.dumps({"action": "retention"}))
    body = answer.get_json()
    assert answer.status_code == 200 and body["items"][0]["action"] == "drop"
    assert [r["request_id"] for r in body["erasures_resumed"]] == ["er-" + "2" * 20]
    dry = client.post("/", data=json.dumps({"action": "retention", "dry_run": True})).get_json()
    assert dry["dry_run"] is True and dry["erasures_resumed"] == []
    assert fake.retention_.dry == [False, True] and fake.eraser_.ran == ["er-" + "2" * 20]
    assert callable(fake.alert)  # retention's alerts go to the alerts topic


def test_erase_answers_the_receipt(client_and_fake) -> None:
    client, _ = client_and_fake
    answer = client.post("/", data=json.dumps({"action": "erase", "user_ids": ["u-1"]}))
    assert answer.status_code == 200
    assert answer.get_json()["receipt"] == {"hot": {"telemetry_events": 2}}


@pytest.mark.parametrize(
    ("error", "status", "says"),
    [
        (ErasureRunning("erasure er-1 is already running"), 409, "already running"),
        (UnknownRequest("no erasure request er-1"), 404, "no erasure request"),
        (ServiceUnavailable("PostgreSQL down", "postgresql"), 503, "resumes on the next call"),
        (TerminalError("the rewrite differs"), 500, "the rewrite differs"),
        (RuntimeError("a bug"), 500, "internal error"),
    ],
)
def test_failures_map_to_statuses(
    client_and_fake, error: Exception, status: int, says: str
) -> None:
    client, fake = client_and_fake
    fake.fail = error
    answer = client.post("/", data=json.dumps({"action": "erase", "user_ids": ["u-1"]}))
    assert answer.status_code == status and says in answer.get_json()["error"]
    if status == 503:
        assert answer.headers["Retry-After"] == "60"


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"{", "not JSON"),
        (b"[]", "body: Expected `object`, got `array`"),
        (b"", "must name an action"),
        (b'{"action": 1}', "body.action: must be one of ['archive_verify', 'audit_verify',"),
        (b'{"action": "erase"}', "missing required field `user_ids`"),
        (b'{"action": "erase", "user_ids": "u-1"}', "body.user_ids: Expected `array`"),
        (b'{"action": "retention", "dry_run": "yes"}', "body.dry_run: Expected `bool`"),
        (b'{"action": "retention", "dryrun": true}', "unknown field `dryrun`"),
    ],
)
def test_bad_bodies_say_what_is_wrong(client_and_fake, body: bytes, says: str) -> None:
    client, _ = client_and_fake
    answer = client.post("/", data=body)
    assert answer.status_code == 400 and says in answer.get_json()["error"]


def test_status_verify_and_checks(client_and_fake, monkeypatch: pytest.MonkeyPatch) -> None:

    from shared.storage.audit import BrokenLink
    from shared.storage.cold.verify import ArchiveProblem, VerifyReport

    client, fake = client_and_fake
    fake.eraser_.verify = lambda request_id: {"hot.telemetry_events": 0, "warm.api_calls_log": 2}  # type: ignore[attr-defined]
    fake.engine = fake.bucket = None  # type: ignore[attr-defined]
    from shared.storage import audit
    from shared.storage.cold import verify

    monkeypatch.setattr(
        verify,
        "verify_archives",
        lambda engine, bucket, deep: VerifyReport(
            1, 2, [ArchiveProblem("c", "archives/ab/x", "missing")]
        ),
    )
    monkeypatch.setattr(audit, "verify_chain", lambda engine: (5, BrokenLink(3, "changed")))
    request_id = "er-" + "3" * 20

    def call(body: dict[str, Any]) -> dict[str, Any]:
        answer = client.post("/", data=json.dumps(body))
        assert answer.status_code == 200
        return answer.get_json()

    assert call({"action": "erase_status", "request_id": request_id})["request_id"] == request_id
    verified = call({"action": "erase_verify", "request_id": request_id})
    assert verified["clean"] is False and verified["remaining"]["warm.api_calls_log"] == 2
    assert call({"action": "archive_verify"})["problems"] == ["archives/ab/x: missing"]
    assert call({"action": "audit_verify"}) == {"entries": 5, "broken": "entry 3: changed"}


def test_the_lifecycle_is_built_once_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.settings import reset_settings
    from shared.storage.gcs import reset_storage_client
    from shared.storage.hot.engine import dispose_engine

    create_app(target="lifecycle", source=str(SOURCE))
    import main as lifecycle_main

    monkeypatch.setenv("DATABASE_URL", "postgresql+pg8000://nobody@127.0.0.1:9/none")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:9")
    monkeypatch.setenv("TELEMETRY_BUCKET", "unit-bucket")
    for reset in (reset_settings, reset_storage_client, dispose_engine, lifecycle_main.reset):
        reset()
    try:
        built = lifecycle_main.get_lifecycle()
        assert lifecycle_main.get_lifecycle() is built
        assert built.bucket.name == "unit-bucket" and built.engine.url.port == 9
    finally:
        for reset in (reset_settings, reset_storage_client, dispose_engine, lifecycle_main.reset):
            reset()
