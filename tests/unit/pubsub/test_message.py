"""The message body: one encoder, one strict decoder, batches split by size and count."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest

from shared.contract.stored_event import decode_stored_event
from shared.errors import ContractViolation
from shared.pubsub import message as wire

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)


def test_round_trip_and_one_spelling_of_timestamps(make_stored) -> None:
    ((body, count),) = list(wire.encode_batches([make_stored(1), make_stored(2)]))
    assert count == 2 and b'"event_ts":"2026-11-24T12:00:00Z"' in body
    decoded = wire.decode_message(body)
    assert [decode_stored_event(raw) for raw in decoded.events] == [make_stored(1), make_stored(2)]


def test_batches_split_by_count_and_size(monkeypatch: pytest.MonkeyPatch, make_stored) -> None:
    monkeypatch.setattr(wire, "MAX_EVENTS_PER_MESSAGE", 3)
    counts = [n for _, n in wire.encode_batches([make_stored(i) for i in range(7)])]
    assert counts == [3, 3, 1]
    monkeypatch.setattr(wire, "MAX_MESSAGE_BYTES", 2_000)
    bodies = list(
        wire.encode_batches(
            [make_stored(i, props={"node_id": "n" * 500}, sample_rate=0.2) for i in range(5)]
        )
    )
    assert all(len(body) <= 2_000 for body, _ in bodies)
    assert sum(n for _, n in bodies) == 5


def test_dead_letter_body_keeps_raw_events_and_is_the_same_format() -> None:
    raw = msgspec.Raw(b'{"odd": [1, 2]}')
    body = wire.encode_message([raw], ["events[0].event_id: missing"])
    decoded = wire.decode_message(body)
    assert bytes(decoded.events[0]) == b'{"odd": [1, 2]}'
    assert decoded.reasons == ["events[0].event_id: missing"]


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (b"{", "message"),
        (b'{"v": "1", "events": []}', "message.v"),
        (b'{"v": 1, "events": {}}', "message.events"),
        (b'{"events": []}', "message"),
    ],
)
def test_strict_decoder_names_the_field(data: bytes, field: str) -> None:
    with pytest.raises(ContractViolation) as caught:
        wire.decode_message(data)
    assert caught.value.field == field


def test_message_attributes() -> None:
    assert wire.message_attributes(3, "dev", "ingest") == {
        "envelope_version": "1",
        "event_count": "3",
        "environment": "dev",
        "source": "ingest",
    }
