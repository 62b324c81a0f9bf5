"""The sink on the real stack: ingest → emulator → push → sink → PostgreSQL, and its failures."""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from google.cloud import pubsub_v1
from sqlalchemy import Engine, text

from shared.contract.stored_event import StoredEvent
from shared.policy.privacy import Pseudonymiser
from shared.pubsub import resources as names
from shared.pubsub.message import encode_batches
from shared.pubsub.publisher import EventPublisher, reset_publisher
from shared.settings import DEV_PSEUDONYM_KEY, get_settings, parse_keyring
from shared.storage.hot.engine import make_engine, run_migrations
from telemetry_cli.cli import cli
from telemetry_cli.stack.postgres import EmbeddedPostgres

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _fresh_publisher(services) -> Iterator[None]:
    reset_publisher()
    yield
    reset_publisher()


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
    services, sink_url: str, engine: Engine, tmp_path: Path, function_server
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


def test_duplicate_storm_leaves_one_row_per_event(
    services, sink_url: str, engine: Engine, make_events
) -> None:
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
                post(
                    f"{sink_url}/projects/p/topics/{names.TOPIC_EVENTS}",
                    push,
                    {"Content-Type": "application/json"},
                )
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


def test_push_without_attributes_is_stored(sink_url: str, engine: Engine, make_events) -> None:
    events = make_events(2)
    ((body, _),) = list(encode_batches(events))
    push = json.dumps(
        {
            "subscription": "projects/p/subscriptions/s",
            "message": {"data": base64.b64encode(body).decode(), "messageId": "no-attrs"},
        }
    ).encode()
    assert (
        post(
            f"{sink_url}/projects/p/topics/{names.TOPIC_EVENTS}",
            push,
            {"Content-Type": "application/json"},
        )
        == 200
    )
    assert count_rows(engine, [e.event_id for e in events]) == 2


def test_poison_message_ends_in_the_dlq_with_its_reason(services, sink_url: str, topic_tap) -> None:
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
            for m in dlq.pull_all(expected=1, timeout=20)
            if m.attributes.get("source") == "poison-test"
        ]
    assert len(messages) == 1
    (message,) = messages
    assert message.attributes["reason"] == "message body is not JSON"
    assert message.attributes["dead_lettered_by"] == "sink"
    assert message.data == b"\x89 definitely not json"


@contextlib.contextmanager
def dedicated_delivery(project: str, sink_url: str, attempts: int) -> Iterator[None]:
    """A subscription of its own on the events topic, relayed to ``sink_url`` like the stack's."""
    from google.protobuf import duration_pb2

    from telemetry_cli.stack.relay import PushRelay

    subscriber = pubsub_v1.SubscriberClient()
    path = subscriber.subscription_path(project, f"sink-test-{uuid.uuid4().hex[:8]}")
    minimum, maximum = names.LOCAL_RETRY_BACKOFF_S
    subscriber.create_subscription(
        request={
            "name": path,
            "topic": f"projects/{project}/topics/{names.TOPIC_EVENTS}",
            "ack_deadline_seconds": 10,
            "dead_letter_policy": {
                "dead_letter_topic": f"projects/{project}/topics/{names.TOPIC_DLQ}",
                "max_delivery_attempts": attempts,
            },
            "retry_policy": {
                "minimum_backoff": duration_pb2.Duration(seconds=minimum),
                "maximum_backoff": duration_pb2.Duration(seconds=maximum),
            },
        }
    )
    endpoint = f"{sink_url}/projects/{project}/topics/{names.TOPIC_EVENTS}"
    relay = PushRelay(path, endpoint).start()
    try:
        yield
    finally:
        relay.stop()
        subscriber.delete_subscription(subscription=path)
        subscriber.close()


#: Pub/Sub's own dead-letter window before this issue: 5 attempts at a 1-10 s backoff.
OLD_LOCAL_DEAD_LETTER_WINDOW_S = 1 + 2 + 4 + 8 + 10


def test_postgres_down_longer_than_the_old_dead_letter_window_loses_nothing(
    services, tmp_path: Path, function_server, topic_tap, make_events
) -> None:
    """Regression: a database outage under load stranded accepted events (the emulator's push
    stalled) or dead-lettered them all (5 attempts). Every event is stored exactly once, and
    nothing is left dead-lettered."""
    project = services.options.project
    pg = EmbeddedPostgres(tmp_path / "pg")
    tmp_path.chmod(0o755)
    pg.start()
    engine = make_engine(pg.url)
    run_migrations(engine)
    env = {**services.env(), "DATABASE_URL": pg.url}
    source = f"outage-{uuid.uuid4().hex[:8]}"
    try:
        with (
            function_server("sink", env, tmp_path) as url,
            topic_tap(project, names.TOPIC_DLQ) as dlq,
            dedicated_delivery(project, url, names.MAX_DELIVERY_ATTEMPTS),
        ):
            publisher = EventPublisher(get_settings())
            first = make_events(10)
            publisher.publish(first, source)
            assert wait_rows(engine, [e.event_id for e in first], 10) == 10
            pg.stop()
            later: list[StoredEvent] = []
            outage_ends = time.monotonic() + OLD_LOCAL_DEAD_LETTER_WINDOW_S + 10
            while time.monotonic() < outage_ends:  # load goes on while the database is down
                batch = make_events(5) + make_events(1, llm=True)
                publisher.publish(batch, source)
                later.extend(batch)
                time.sleep(1)
            pg.start()
            ids = [e.event_id for e in first + later]
            assert wait_rows(engine, ids, len(ids), timeout=120) == len(ids)
            time.sleep(2)
            assert count_rows(engine, ids) == len(ids)
            dead = [m for m in dlq.drain(2) if m.attributes.get("source") == source]
            assert dead == []
    finally:
        engine.dispose()
        pg.stop()


def test_sink_killed_mid_load_loses_nothing(
    services, engine: Engine, tmp_path: Path, topic_tap, make_events
) -> None:
    """``kill -9`` of the sink in the middle of the load, then a new sink on the same port."""
    import os
    import signal

    from telemetry_cli.stack.functions import FUNCTIONS_DIR, function_process, wait_function
    from telemetry_cli.stack.process import free_port

    project = services.options.project
    port = free_port()
    env = {**os.environ, **services.env()}

    def start_sink(n: int):  # type: ignore[no-untyped-def]
        proc = function_process("sink", FUNCTIONS_DIR, port, tmp_path / f"sink-{n}.log", env)
        proc.start()
        wait_function(proc, port)
        return proc

    source = f"kill-{uuid.uuid4().hex[:8]}"
    sink = start_sink(1)
    events: list[StoredEvent] = []
    try:
        with (
            topic_tap(project, names.TOPIC_DLQ) as dlq,
            dedicated_delivery(project, f"http://127.0.0.1:{port}", names.MAX_DELIVERY_ATTEMPTS),
        ):
            publisher = EventPublisher(get_settings())
            for round_ in range(30):
                batch = make_events(20)
                publisher.publish(batch, source)
                events.extend(batch)
                if round_ == 10:
                    os.killpg(sink.pid, signal.SIGKILL)
                if round_ == 20:
                    sink = start_sink(2)
                time.sleep(0.1)
            ids = [e.event_id for e in events]
            assert wait_rows(engine, ids, len(ids), timeout=120) == len(ids)
            time.sleep(2)
            assert count_rows(engine, ids) == len(ids)
            assert [m for m in dlq.drain(2) if m.attributes.get("source") == source] == []
    finally:
        sink.stop()


def test_poison_message_is_still_dead_lettered_at_once(
    services, sink_url: str, topic_tap, make_events
) -> None:
    from shared.pubsub.publisher import topic_path
    from shared.pubsub.rpc import publish_rpc

    tag = uuid.uuid4().hex[:8]
    with topic_tap(services.options.project, names.TOPIC_DLQ) as dlq:
        started = time.monotonic()
        publish_rpc().send(
            topic_path(get_settings(), names.TOPIC_EVENTS),
            [(b'{"v": 1, "events": [{"event_id": 7}]}', {"source": f"poison-{tag}"})],
            10,
        )
        found = [
            m
            for m in dlq.pull_all(expected=1, timeout=30)
            if m.attributes.get("source") == f"poison-{tag}"
        ]
        assert found and time.monotonic() - started < 15
    (message,) = found
    assert message.attributes["dead_lettered_by"] == "sink"
    assert message.attributes["reason"].startswith("events[0].event_id: Expected `str`")
    assert "CloudPubSubDeadLetterSourceDeliveryCount" not in message.attributes


def test_exhausted_messages_are_replayed_and_poison_stays(
    services, sink_url: str, engine: Engine, make_events
) -> None:
    """`telemetry dlq replay --exhausted` takes back what Pub/Sub dead-lettered after max
    attempts (an outage), and leaves what the sink dead-lettered for a reason."""
    from shared.pubsub.publisher import topic_path
    from shared.pubsub.rpc import publish_rpc

    exhausted, poison = make_events(2), make_events(2)
    ((exhausted_body, _),) = list(encode_batches(exhausted))
    ((poison_body, _),) = list(encode_batches(poison))
    tag = uuid.uuid4().hex[:8]
    publish_rpc().send(
        topic_path(get_settings(), names.TOPIC_DLQ),
        [
            (exhausted_body, {"source": tag, "CloudPubSubDeadLetterSourceDeliveryCount": "100"}),
            (poison_body, {"source": tag, "reason": f"poison-{tag}", "dead_lettered_by": "sink"}),
        ],
        10,
    )
    result = CliRunner().invoke(cli, ["dlq", "replay", "--exhausted"])
    assert result.exit_code == 0, result.output
    assert wait_rows(engine, [e.event_id for e in exhausted], 2) == 2
    listing = CliRunner().invoke(cli, ["dlq"])
    assert any(
        line.split(None, 1) == ["1", f"poison-{tag}"] for line in listing.output.splitlines()
    )
    assert count_rows(engine, [e.event_id for e in poison]) == 0


def test_pubsub_dead_letters_after_max_delivery_attempts(
    services, tmp_path: Path, function_server, topic_tap, make_events
) -> None:
    project = services.options.project
    env = {**services.env(), "DATABASE_URL": "postgresql+pg8000://nobody@127.0.0.1:1/none"}
    with (
        function_server("sink", env, tmp_path) as url,
        topic_tap(project, names.TOPIC_DLQ) as dlq,
        dedicated_delivery(project, url, 5),
    ):
        events = make_events(1, tag="maxattempts")
        EventPublisher(get_settings()).publish(events, "max-attempts-test")
        found = [
            m
            for m in dlq.pull_all(expected=1, timeout=90)
            if m.attributes.get("source") == "max-attempts-test"
        ]
    assert found, "Pub/Sub did not dead-letter the message"
    assert int(found[0].attributes["CloudPubSubDeadLetterSourceDeliveryCount"]) >= 5


def test_dlq_list_and_replay(services, sink_url: str, engine: Engine, make_events) -> None:
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
