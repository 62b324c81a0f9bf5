"""The publisher: batches become messages with attributes, sent through the RPC it was given."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import pytest

from shared.pubsub.message import decode_message
from shared.pubsub.publisher import EventPublisher, dead_letter_sender
from shared.settings import load_settings

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)


class FakeRpc:
    """Records Publish calls instead of sending them."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[tuple[bytes, Mapping[str, str]]]]] = []

    def send(
        self, topic: str, messages: Sequence[tuple[bytes, Mapping[str, str]]], budget: float
    ) -> int:
        self.sent.append((topic, list(messages)))
        return len(messages)


def test_nopub_variable_no_longer_drops_events(
    monkeypatch: pytest.MonkeyPatch, make_stored
) -> None:
    """Regression: an undocumented ``NOPUB`` variable dropped every event while ingest still
    answered 202. Benchmarks that need no Pub/Sub pass a fake RPC instead."""
    monkeypatch.setenv("NOPUB", "1")
    rpc = FakeRpc()
    publisher = EventPublisher(load_settings(), rpc=rpc)  # type: ignore[arg-type]
    assert publisher.publish([make_stored(1), make_stored(2)], "ingest", {"traceparent": "x"}) == 1
    ((topic, messages),) = rpc.sent
    assert topic == "projects/telemetry-local/topics/telemetry-events"
    ((body, attributes),) = messages
    assert len(decode_message(body).events) == 2
    assert attributes["event_count"] == "2" and attributes["source"] == "ingest"
    assert attributes["traceparent"] == "x"
    assert publisher.publish([], "ingest") == 0


def test_dead_letter_sender_publishes_to_the_dlq_topic() -> None:
    rpc = FakeRpc()
    send = dead_letter_sender(load_settings(), rpc)  # type: ignore[arg-type]
    send(b"data", {"reason": "x"})
    assert rpc.sent == [
        ("projects/telemetry-local/topics/telemetry-events-dlq", [(b"data", {"reason": "x"})])
    ]
