"""The lifecycle function under functions-framework, a real HTTP server on the real services."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.storage.hot.engine import make_engine
from shared.storage.hot.writer import write_events
from tests.integration.test_lifecycle import KEYRING, TODAY, events

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def lifecycle_url(
    services: Any, function_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    logs = tmp_path_factory.mktemp("lifecycle-logs")
    env = {
        **services.env(),
        "TELEMETRY_PSEUDONYM_KEY": KEYRING,
        "TELEMETRY_ARCHIVE_KEK": f"file:{logs / 'kek.key'}",
        "TELEMETRY_LOG_LEVEL": "INFO",
    }
    with function_server("lifecycle", env, logs) as url:
        yield url, logs


def post(url: str, body: Any, method: str = "POST") -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_erase_over_http_answers_a_receipt_without_raw_ids(
    services: Any, lifecycle_url: tuple[str, Path]
) -> None:
    url, logs = lifecycle_url
    user = f"u-fn-{uuid.uuid4().hex[:6]}"
    engine = make_engine(services.database_url)
    write_events(engine, events(user, TODAY, 3, llm=1, keyring=KEYRING))
    status, body = post(url, {"action": "erase", "user_ids": [user]})
    assert status == 200, body
    assert body["stage"] == "done"
    assert body["receipt"]["hot"] == {"telemetry_events": 2, "api_calls_log": 1}
    request_id = body["request_id"]
    assert user not in json.dumps(body)
    status, again = post(url, {"action": "erase_status", "request_id": request_id})
    assert status == 200 and again["receipt"] == body["receipt"]
    status, verified = post(url, {"action": "erase_verify", "request_id": request_id})
    assert status == 200 and verified["clean"] is True, verified
    status, chain = post(url, {"action": "audit_verify"})
    assert status == 200 and chain["broken"] is None and chain["entries"] >= 4
    status, archives = post(url, {"action": "archive_verify"})
    assert status == 200 and archives["problems"] == []
    status, dry = post(url, {"action": "retention", "dry_run": True})
    assert status == 200 and dry["dry_run"] is True
    logged = "".join(p.read_text() for p in logs.glob("*.log"))
    assert "erasure done" in logged and user not in logged


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (b"not json", 400, "not JSON"),
        ({"action": "shred-everything"}, 400, "one of"),
        ({"action": "erase", "user_ids": "u-1"}, 400, "body.user_ids: Expected `array`, got `str`"),
        ({"action": "erase", "user_ids": []}, 400, "user_ids must be a non-empty list"),
        ({"action": "erase", "user_ids": [""]}, 400, "user_ids[0]"),
        ({"action": "erase_status", "request_id": "drop table"}, 400, "request id looks like"),
        ({"action": "erase_status", "request_id": "er-" + "0" * 20}, 404, "no erasure request"),
    ],
)
def test_bad_requests_are_told_what_is_wrong(
    lifecycle_url: tuple[str, Path], body: Any, status: int, says: str
) -> None:
    got, answer = post(lifecycle_url[0], body)
    assert got == status and says in answer["error"]


def test_only_post_is_allowed(lifecycle_url: tuple[str, Path]) -> None:
    status, answer = post(lifecycle_url[0], b"", method="GET")
    assert status == 405 and "use POST" in answer["error"]
