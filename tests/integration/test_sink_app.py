"""The sink function in-process (functions-framework's Flask app) on the real services."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from functions_framework import create_app
from sqlalchemy import Engine, text

from shared.pubsub import resources as names
from shared.pubsub.publisher import reset_publisher
from shared.storage.hot.engine import dispose_engine

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(services, project_dir) -> Iterator[Any]:
    dispose_engine()
    reset_publisher()
    app = create_app(target="sink", source=str(project_dir / "functions" / "sink" / "main.py"))
    import main as sink_main  # the module functions-framework just loaded

    sink_main.reset()
    yield app.test_client()
    sink_main.reset()
    dispose_engine()


def push(client: Any, data: bytes, attributes: dict[str, str] | None = None) -> Any:
    message: dict[str, Any] = {
        "data": base64.b64encode(data).decode(),
        "messageId": uuid.uuid4().hex,
    }
    if attributes is not None:
        message["attributes"] = attributes
    body = {"subscription": "projects/p/subscriptions/telemetry-events-sink", "message": message}
    return client.post(
        f"/projects/p/topics/{names.TOPIC_EVENTS}",
        data=json.dumps(body),
        headers={"Content-Type": "application/json"},
    )


def test_push_is_stored_and_acknowledged(client: Any, engine: Engine, make_events) -> None:
    from shared.pubsub.message import encode_batches

    events = make_events(4, llm=True)
    ((body, _),) = list(encode_batches(events))
    assert push(client, body, {"event_count": "4"}).status_code == 200
    assert push(client, body).status_code == 200  # redelivered, no attributes: a no-op
    ids = [e.event_id for e in events]
    with engine.connect() as conn:
        stored = conn.execute(
            text(
                "SELECT (SELECT count(*) FROM telemetry_events WHERE event_id = ANY(CAST(:i AS uuid[])))"
                " + (SELECT count(*) FROM api_calls_log WHERE call_id = ANY(CAST(:i AS uuid[])))"
            ),
            {"i": ids},
        ).scalar()
    assert stored == 4


def test_poison_push_is_dead_lettered_then_acknowledged(services, client: Any, topic_tap) -> None:
    with topic_tap(services.options.project, names.TOPIC_DLQ) as dlq:
        assert push(client, b"{broken", {"source": "in-process"}).status_code == 200
        found = [
            m
            for m in dlq.pull_all(expected=1, timeout=15)
            if m.attributes.get("source") == "in-process"
        ]
    assert len(found) == 1 and found[0].attributes["reason"] == "message body is not JSON"


def test_database_down_answers_500_for_redelivery(
    client: Any, monkeypatch: pytest.MonkeyPatch, make_events
) -> None:
    from shared.pubsub.message import encode_batches

    monkeypatch.setenv("DATABASE_URL", "postgresql+pg8000://nobody@127.0.0.1:1/none")
    import main as sink_main

    from shared.settings import reset_settings

    reset_settings()
    dispose_engine()
    sink_main.reset()
    try:
        ((body, _),) = list(encode_batches(make_events(1)))
        assert push(client, body, {}).status_code == 500
    finally:
        monkeypatch.undo()
        reset_settings()
        dispose_engine()
        sink_main.reset()
