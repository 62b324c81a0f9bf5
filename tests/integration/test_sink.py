"""The sink on the real stack: ingest → emulator → push → sink → PostgreSQL, and its failures."""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from google.cloud import pubsub_v1
from sqlalchemy import Engine, text

from shared.contract.intake import Intake
from shared.contract.stored_event import StoredEvent
from shared.contract.validation import EventValidator
from shared.policy.privacy import Pseudonymiser
from shared.policy.sampling import SamplingPolicy
from shared.pubsub import resources as names
from shared.pubsub.message import encode_batches
from shared.pubsub.publisher import EventPublisher, reset_publisher
from shared.settings import DEV_PSEUDONYM_KEY, get_settings, parse_keyring
from shared.storage.hot.engine import make_engine, run_migrations
from telemetry_cli.cli import cli
from telemetry_cli.stack.postgres import EmbeddedPostgres
from tests.helpers import function_server, pull_all, topic_tap
from tests.integration.conftest import push_endpoint

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _fresh_publisher(services) -> Iterator[None]:
    reset_publisher()
    yield
    reset_publisher()


def make_events(count: int, *, llm: bool = False, tag: str | None = None) -> list[StoredEvent]:
    now = datetime.now(UTC)
    intake = Intake(
        EventValidator(), SamplingPolicy({}), Pseudonymiser(parse_keyring(DEV_PSEUDONYM_KEY))
    )
    session = f"s-{tag or uuid.uuid4().hex[:8]}"
    raw = []
    for i in range(count):
        event: dict[str, Any] = {
            "event_id": str(uuid.uuid4()),
            "name": "node.expand",
            "ts": (now - timedelta(seconds=5)).isoformat(),
            "props": {"node_id": f"n-{i}", "depth": 1},
        }
        if llm and i == 0:
            event.update(
                name="llm.call",
                props={
                    "provider": "anthropic",
                    "model": "claude-sonnet-4",
                    "operation": "bias_prefilter",
                    "latency_ms": 812.5,
                    "status": "ok",
                    "input_tokens": 1200,
                    "output_tokens": 150,
                    "cached_input_tokens": 800,
                    "cost_usd": 0.00609,
                    "price_version": "2026-11-01",
                },
            )
        raw.append(event)
    result = intake.process_events(raw, {"session_id": session, "user_id": "u-sink"}, now)
    assert len(result.accepted) == count, result.rejected
    return result.accepted


def count_rows(engine: Engine, ids: list[str]) -> int:
    with engine.connect() as conn:
        events = conn.execute(
            text(
                "SELECT count(*) FROM telemetry_events WHERE event_id = ANY(CAST(:ids AS uuid[]))"
            ),
            {"ids": ids},
        ).scalar()
        calls = conn.execute(
            text("SELECT count(*) FROM api_calls_log WHERE call_id = ANY(CAST(:ids AS uuid[]))"),
            {"ids": ids},
        ).scalar()
    return int(events or 0) + int(calls or 0)


def wait_rows(engine: Engine, ids: list[str], expected: int, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    found = 0
    while time.monotonic() < deadline:
        found = count_rows(engine, ids)
        if found >= expected:
            return found
        time.sleep(0.3)
    return found


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_ingest_to_postgres_end_to_end(
    services, sink_url: str, engine: Engine, tmp_path: Path
) -> None:
    now = datetime.now(UTC) - timedelta(seconds=3)
    ids = [str(uuid.uuid4()) for _ in range(3)]
    beacon = {
        "context": {"session_id": "s-e2e", "user_id": "u-e2e", "app_version": "2.0.0"},
        "events": [
            {
                "event_id": ids[0],
                "name": "detail_panel.view",
                "ts": now.isoformat(),
                "conversation_id": "c-1",
                "props": {"node_id": "n-1", "panel": "bias", "duration_ms": 840},
            },
            {
                "event_id": ids[1],
                "name": "feedback.submit",
                "ts": now.isoformat(),
                "props": {
                    "rating": 4,
                    "contact_email": "me@example.com",
                    "page_url": "https://x/?u=1",
                },
            },
            {
                "event_id": ids[2],
                "name": "llm.call",
                "ts": now.isoformat(),
                "props": {
                    "provider": "openai",
                    "model": "gpt-4o-mini",
                    "operation": "summarise",
                    "latency_ms": 900.0,
                    "status": "ok",
                    "input_tokens": 5000,
                    "output_tokens": 400,
                    "cost_usd": 0.00099,
                    "price_version": "2026-11-01",
                },
            },
        ],
    }
    with function_server("ingest", services.env(), tmp_path) as ingest:
        status = post(
            f"{ingest}/v1/events",
            json.dumps(beacon).encode(),
            {"Content-Type": "text/plain;charset=UTF-8"},
        )
    assert status == 202
    assert wait_rows(engine, ids, 3) == 3
    with engine.connect() as conn:
        view = (
            conn.execute(text("SELECT * FROM telemetry_events WHERE event_id = :i"), {"i": ids[0]})
            .mappings()
            .one()
        )
        feedback = conn.execute(
            text("SELECT props FROM telemetry_events WHERE event_id = :i"), {"i": ids[1]}
        ).scalar_one()
        call = (
            conn.execute(text("SELECT * FROM api_calls_log WHERE call_id = :i"), {"i": ids[2]})
            .mappings()
            .one()
        )
    key_id, user_key = Pseudonymiser(parse_keyring(DEV_PSEUDONYM_KEY)).pseudonym("u-e2e")
    assert view["user_key"] == user_key and view["key_id"] == key_id
    assert view["props"] == {"node_id": "n-1", "panel": "bias", "duration_ms": 840}
    assert (
        view["conversation_id"] == "c-1"
        and view["app_version"] == "2.0.0"
        and view["sample_rate"] == 1.0
    )
    assert (
        set(feedback) == {"rating", "contact_email"}
        and feedback["contact_email"] != "me@example.com"
    )
    assert (
        call["model"] == "gpt-4o-mini"
        and call["input_tokens"] == 5000
        and call["output_tokens"] == 400
    )
    assert (
        float(call["cost_usd"]) == 0.00099
        and call["price_version"] == "2026-11-01"
        and call["status"] == "ok"
    )


def test_duplicate_storm_leaves_one_row_per_event(services, sink_url: str, engine: Engine) -> None:
    events = make_events(20, llm=True)
    ids = [e.event_id for e in events]
    publisher = EventPublisher(get_settings())
    threads = [threading.Thread(target=publisher.publish, args=(events, "test")) for _ in range(15)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ((body, count),) = list(encode_batches(events))
    push = json.dumps(
        {
            "subscription": "projects/p/subscriptions/s",
            "message": {
                "data": base64.b64encode(body).decode(),
                "messageId": "dup-1",
                "attributes": {"event_count": str(count)},
            },
        }
    ).encode()
    statuses: list[int] = []
    direct = [
        threading.Thread(
            target=lambda: statuses.append(
                post(push_endpoint(sink_url, "p"), push, {"Content-Type": "application/json"})
            )
        )
        for _ in range(15)
    ]
    for thread in direct:
        thread.start()
    for thread in direct:
        thread.join()
    assert statuses == [200] * 15
    assert wait_rows(engine, ids, 20) == 20
    time.sleep(2)  # let every redundant delivery land
    assert count_rows(engine, ids) == 20


def test_push_without_attributes_is_stored(sink_url: str, engine: Engine) -> None:
    events = make_events(2)
    ((body, _),) = list(encode_batches(events))
    push = json.dumps(
        {
            "subscription": "projects/p/subscriptions/s",
            "message": {"data": base64.b64encode(body).decode(), "messageId": "no-attrs"},
        }
    ).encode()
    assert post(push_endpoint(sink_url, "p"), push, {"Content-Type": "application/json"}) == 200
    assert count_rows(engine, [e.event_id for e in events]) == 2


def test_poison_message_ends_in_the_dlq_with_its_reason(services, sink_url: str) -> None:
    from shared.pubsub.publisher import topic_path
    from shared.pubsub.rpc import publish_rpc

    with topic_tap(services.options.project, names.TOPIC_DLQ) as dlq:
        publish_rpc().send(
            topic_path(get_settings(), names.TOPIC_EVENTS),
            [(b"\x89 definitely not json", {"source": "poison-test"})],
            10,
        )
        messages = [
            m
            for m in pull_all(dlq, expected=1, timeout=20)
            if m.attributes.get("source") == "poison-test"
        ]
    assert len(messages) == 1
    (message,) = messages
    assert message.attributes["reason"] == "message body is not JSON"
    assert message.attributes["dead_lettered_by"] == "sink"
    assert message.data == b"\x89 definitely not json"


def _dedicated_push(project: str, endpoint: str, attempts: int) -> tuple[Any, str]:
    subscriber = pubsub_v1.SubscriberClient()
    path = subscriber.subscription_path(project, f"sink-test-{uuid.uuid4().hex[:8]}")
    subscriber.create_subscription(
        request={
            "name": path,
            "topic": f"projects/{project}/topics/{names.TOPIC_EVENTS}",
            "push_config": {"push_endpoint": endpoint},
            "ack_deadline_seconds": 10,
            "dead_letter_policy": {
                "dead_letter_topic": f"projects/{project}/topics/{names.TOPIC_DLQ}",
                "max_delivery_attempts": attempts,
            },
        }
    )
    return subscriber, path


def test_postgres_down_mid_stream_loses_nothing(services, tmp_path: Path) -> None:
    project = services.options.project
    pg = EmbeddedPostgres(tmp_path / "pg")
    tmp_path.chmod(0o755)
    pg.start()
    engine = make_engine(pg.url)
    run_migrations(engine)
    env = {**services.env(), "DATABASE_URL": pg.url}
    try:
        with function_server("sink", env, tmp_path) as url:
            subscriber, path = _dedicated_push(project, push_endpoint(url, project), attempts=20)
            try:
                publisher = EventPublisher(get_settings())
                first = make_events(10)
                publisher.publish(first, "test")
                assert wait_rows(engine, [e.event_id for e in first], 10) == 10
                pg.stop()
                later = make_events(10) + make_events(10, llm=True)
                publisher.publish(later[:10], "test")
                publisher.publish(later[10:], "test")
                time.sleep(3)  # deliveries fail while the database is down
                pg.start()
                ids = [e.event_id for e in first + later]
                assert wait_rows(engine, ids, 30, timeout=90) == 30
                time.sleep(2)
                assert count_rows(engine, ids) == 30
            finally:
                subscriber.delete_subscription(subscription=path)
                subscriber.close()
    finally:
        engine.dispose()
        pg.stop()


def test_pubsub_dead_letters_after_max_delivery_attempts(services, tmp_path: Path) -> None:
    project = services.options.project
    env = {**services.env(), "DATABASE_URL": "postgresql+pg8000://nobody@127.0.0.1:1/none"}
    with function_server("sink", env, tmp_path) as url, topic_tap(project, names.TOPIC_DLQ) as dlq:
        subscriber, path = _dedicated_push(project, push_endpoint(url, project), attempts=5)
        try:
            events = make_events(1, tag="maxattempts")
            EventPublisher(get_settings()).publish(events, "max-attempts-test")
            found = [
                m
                for m in pull_all(dlq, expected=1, timeout=90)
                if m.attributes.get("source") == "max-attempts-test"
            ]
        finally:
            subscriber.delete_subscription(subscription=path)
            subscriber.close()
    assert found, "Pub/Sub did not dead-letter the message"
    assert int(found[0].attributes["CloudPubSubDeadLetterSourceDeliveryCount"]) >= 5


def test_dlq_list_and_replay(services, sink_url: str, engine: Engine) -> None:
    from shared.pubsub.publisher import topic_path
    from shared.pubsub.rpc import publish_rpc

    reason = f"test-replay-{uuid.uuid4().hex[:8]}"
    events = make_events(3)
    ((body, count),) = list(encode_batches(events))
    publish_rpc().send(
        topic_path(get_settings(), names.TOPIC_DLQ),
        [(body, {"reason": reason, "event_count": str(count), "dead_lettered_by": "sink"})],
        10,
    )
    runner = CliRunner()
    listing = runner.invoke(cli, ["dlq"])
    assert listing.exit_code == 0, listing.output
    assert any(line.split(None, 1) == ["1", reason] for line in listing.output.splitlines())
    replay = runner.invoke(cli, ["dlq", "replay", "--reason", reason])
    assert replay.exit_code == 0, replay.output
    assert "replayed 1 messages" in replay.output
    assert wait_rows(engine, [e.event_id for e in events], 3) == 3
    again = runner.invoke(cli, ["dlq", "replay", "--reason", reason])
    assert "replayed 0 messages" in again.output
    assert count_rows(engine, [e.event_id for e in events]) == 3
    assert reason not in runner.invoke(cli, ["dlq"]).output
