"""The anomaly function's adapter, its run faked (integration tests run it for real)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from functions_framework import create_app

from shared.errors import ServiceUnavailable
from shared.metrics import canary as metrics_canary
from shared.metrics import run as metrics_run
from shared.metrics.alerting import AlertState
from shared.metrics.catalog import default_catalog
from shared.metrics.materialize import MaterializeReport
from shared.metrics.run import RunReport
from shared.storage import gcs

SOURCE = Path(__file__).resolve().parents[3] / "functions" / "anomaly" / "main.py"


class FakeStore:
    def states(self) -> dict[str, AlertState]:
        return {"llm_error_rate": AlertState(status="firing", severity="critical")}


class FakeRun:
    def __init__(self) -> None:
        self.catalog = default_catalog()
        self.store = FakeStore()
        self.fail: Exception | None = None
        self.calls: list[Any] = []

    def run(self, names: list[str] | None = None) -> RunReport:
        if self.fail is not None:
            raise self.fail
        self.calls.append(("run", names))
        return RunReport()

    def materialize(self, bucket: Any, days_back: int) -> MaterializeReport:
        self.calls.append(("materialize", days_back))
        return MaterializeReport(views={"llm_error_rate": "refreshed"}, days={"2026-11-27": 96})


@pytest.fixture
def client_and_fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, FakeRun]]:
    app = create_app(target="anomaly", source=str(SOURCE))
    import main as anomaly_main  # the module functions-framework loaded

    fake = FakeRun()
    anomaly_main._run = fake
    monkeypatch.setattr(gcs, "get_storage_client", lambda _settings: _FakeClient())
    yield app.test_client(), fake
    anomaly_main.reset()


class _FakeClient:
    def bucket(self, name: str) -> str:
        return f"bucket:{name}"


def test_an_empty_body_evaluates_the_whole_catalog(client_and_fake: Any) -> None:
    client, fake = client_and_fake
    answer = client.post("/", data=b"")
    assert answer.status_code == 200 and answer.json["metrics"] == []
    assert fake.calls == [("run", None)]


def test_evaluate_named_metrics(client_and_fake: Any) -> None:
    client, fake = client_and_fake
    answer = client.post("/", json={"action": "evaluate", "metrics": ["llm_error_rate"]})
    assert answer.status_code == 200 and fake.calls == [("run", ["llm_error_rate"])]


def test_materialize_and_its_days_back(client_and_fake: Any) -> None:
    client, fake = client_and_fake
    answer = client.post("/", json={"action": "materialize", "days_back": 3})
    assert answer.status_code == 200
    assert answer.json == {"views": {"llm_error_rate": "refreshed"}, "days": {"2026-11-27": 96}}
    assert fake.calls == [("materialize", 3)]
    for bad in (-1, 31, "2", True):
        refused = client.post("/", json={"action": "materialize", "days_back": bad})
        assert refused.status_code == 400 and "days_back" in refused.json["error"]


def test_status_lists_each_alert(client_and_fake: Any) -> None:
    client, _ = client_and_fake
    answer = client.post("/", json={"action": "status"})
    assert answer.status_code == 200
    assert answer.json["alerts"]["llm_error_rate"]["status"] == "firing"


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (b"{", 400, "not JSON"),
        (b'{"action": "explode"}', 400, "one of"),
        (b"[1]", 400, "body: Expected `object`, got `array`"),
        (b'{"metrics": ["nope"]}', 400, "unknown metrics"),
        (b'{"metrics": [1]}', 400, "body.metrics[0]: Expected `str`, got `int`"),
        (b'{"action": "status", "metrics": []}', 400, "unknown field `metrics`"),
    ],
)
def test_bad_requests(client_and_fake: Any, body: bytes, status: int, says: str) -> None:
    client, _ = client_and_fake
    answer = client.post("/", data=body, content_type="application/json")
    assert answer.status_code == status and says in answer.json["error"]


def test_get_is_refused(client_and_fake: Any) -> None:
    client, _ = client_and_fake
    assert client.get("/").status_code == 405


def test_an_unreachable_database_answers_503_with_retry_after(client_and_fake: Any) -> None:
    client, fake = client_and_fake
    fake.fail = ServiceUnavailable("PostgreSQL is unreachable", "postgresql")
    answer = client.post("/", json={})
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "60"
    assert "next run catches up" in answer.json["error"]


def test_a_bug_answers_500_and_keeps_its_type_in_the_log(
    client_and_fake: Any, caplog: pytest.LogCaptureFixture
) -> None:
    client, fake = client_and_fake
    fake.fail = KeyError("surprise")
    answer = client.post("/", json={})
    assert answer.status_code == 500 and answer.json["error"].startswith("internal error")
    assert any(r.exc_info and r.exc_info[0] is KeyError for r in caplog.records)


def test_the_run_is_built_once_per_instance(
    client_and_fake: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import main as anomaly_main

    built: list[FakeRun] = []

    def build(_settings: Any) -> FakeRun:
        built.append(FakeRun())
        return built[-1]

    anomaly_main.reset()
    monkeypatch.setattr(metrics_run, "anomaly_from_settings", build)
    first = anomaly_main.get_run()
    assert anomaly_main.get_run() is first and built == [first]


def test_the_canary_needs_its_target_and_a_sane_count(
    client_and_fake: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.settings import reset_settings

    client, _ = client_and_fake
    monkeypatch.delenv("TELEMETRY_CANARY_TARGET", raising=False)
    reset_settings()
    answer = client.post("/", json={"action": "canary"})
    assert answer.status_code == 400 and "TELEMETRY_CANARY_TARGET" in answer.json["error"]
    monkeypatch.setenv("TELEMETRY_CANARY_TARGET", "http://127.0.0.1:9/v1/events")
    reset_settings()
    for count in (0, "5", True, 10_001):
        answer = client.post("/", json={"action": "canary", "count": count})
        assert answer.status_code == 400 and "count" in answer.json["error"]


def test_the_canary_answers_its_report_and_logs_differences(
    client_and_fake: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:

    from shared.metrics.canary import CanaryReport, Difference
    from shared.settings import reset_settings

    client, _ = client_and_fake
    monkeypatch.setenv("TELEMETRY_CANARY_TARGET", "http://127.0.0.1:9/v1/events")
    monkeypatch.setenv("TELEMETRY_CANARY_TARGET_DATABASE_URL", "postgresql+pg8000://u@h/db")
    reset_settings()
    seen: dict[str, Any] = {}

    def fake_canary(settings: Any, target: str, database: str | None, count: int, **kw: Any):
        seen.update(target=target, database=database, count=count)
        report = CanaryReport("r1", "canary-r1", sent=3, accepted=3, landed=2)
        report.counts = {"node.expand": (3, 2)}
        report.differences = [Difference("count of node.expand", 3, 2)]
        return report

    monkeypatch.setattr(metrics_canary, "run_canary", fake_canary)
    answer = client.post("/", json={"action": "canary", "count": 3})
    assert answer.status_code == 200
    assert answer.json["differences"] == ["count of node.expand: source 3, canary 2"]
    assert answer.json["counts"] == {"node.expand": {"source": 3, "canary": 2}}
    assert seen == {
        "target": "http://127.0.0.1:9/v1/events",
        "database": "postgresql+pg8000://u@h/db",
        "count": 3,
    }
    assert any(r.message == "canary found differences" for r in caplog.records)
