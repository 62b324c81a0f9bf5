"""The raw Publish RPC and the group-committed publisher against the real Pub/Sub emulator."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import datetime

import pytest

from shared.contract.stored_event import StoredEvent
from shared.errors import ServiceUnavailable
from shared.pubsub import resources as names
from shared.pubsub.message import event_dicts
from shared.pubsub.publisher import EventPublisher, reset_publisher, topic_path
from shared.pubsub.rpc import publish_rpc
from shared.settings import get_settings
from telemetry_cli.generator import EventGenerator

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _fresh_channel(services):
    reset_publisher()
    yield
    reset_publisher()


def test_messages_and_attributes_arrive_as_sent(services, topic_tap) -> None:
    tag = uuid.uuid4().hex
    messages = [(f"m{i}".encode(), {"tag": tag, "i": str(i)}) for i in range(3)]
    with topic_tap(services.options.project) as tap:
        sent = publish_rpc().send(topic_path(get_settings(), names.TOPIC_EVENTS), messages, 10)
        got = [m for m in tap.pull_all(expected=3) if m.attributes.get("tag") == tag]
    assert sent == 3
    assert sorted((m.data, m.attributes["i"]) for m in got) == [
        (b"m0", "0"),
        (b"m1", "1"),
        (b"m2", "2"),
    ]


def test_a_missing_topic_is_refused_at_once_not_retried(services) -> None:
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable, match=r"Pub/Sub refused the batch \(NOT_FOUND\)"):
        publish_rpc().send(
            f"projects/{services.options.project}/topics/no-such-topic", [(b"x", {})], 10
        )
    assert time.monotonic() - started < 5


def test_an_unreachable_emulator_is_a_timeout_within_the_budget(
    services, monkeypatch: pytest.MonkeyPatch
) -> None:
    from socket import socket

    with socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", f"127.0.0.1:{port}")
    reset_publisher()
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable, match="did not confirm the batch within 1.0 s"):
        publish_rpc().send(topic_path(get_settings(), names.TOPIC_EVENTS), [(b"x", {})], 1.0)
    assert time.monotonic() - started < 4


def test_concurrent_publishes_share_calls_and_every_event_arrives_once(services, topic_tap) -> None:
    generator = EventGenerator(seed=7)
    source = f"group-{uuid.uuid4().hex[:8]}"
    batches = [
        [
            StoredEvent(
                event_id=raw["event_id"],
                name=raw["name"],
                version=raw.get("version", 1),
                category="ui",
                event_ts=datetime.fromisoformat(raw["ts"]),
                received_at=datetime.fromisoformat(raw["ts"]),
                session_id=raw["session_id"],
                props=raw["props"],
                sample_rate=1.0,
            )
            for raw in generator.session(events=5)
        ]
        for _ in range(12)
    ]
    publisher = EventPublisher(get_settings())
    with topic_tap(services.options.project) as tap:
        threads = [
            threading.Thread(target=publisher.publish, args=(batch, source)) for batch in batches
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
        got = [m for m in tap.pull_all(expected=12) if m.attributes.get("source") == source]
    ids = sorted(e["event_id"] for m in got for e in event_dicts(m.data))
    assert ids == sorted(e.event_id for batch in batches for e in batch)
    assert publisher._group.submits == 12
    assert publisher._group.flushes <= 12
