"""The sink's logic with the database and Pub/Sub faked (integration tests use the real ones)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
import orjson
import pg8000.dbapi
import pytest
from sink_logic import SinkHandler
from sqlalchemy import exc as sa_exc

from shared.contract.stored_check import StoredEventCheck
from shared.contract.stored_event import StoredEvent
from shared.errors import ServiceUnavailable
from shared.pubsub.message import encode_batches
from shared.pubsub.push import NOT_BASE64, PushedMessage
from shared.storage.hot.writer import WriteResult

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)


def pushed(
    data: bytes, attributes: dict[str, str] | None = None, mid: str = "m-1"
) -> PushedMessage:
    return PushedMessage(data, attributes or {}, mid)


def message(*events: StoredEvent) -> bytes:
    ((body, _),) = list(encode_batches(list(events)))
    return body


def pg_error(code: str) -> pg8000.dbapi.DatabaseError:
    return pg8000.dbapi.DatabaseError({"S": "ERROR", "C": code, "M": "boom"})


class Recorder:
    """A store and a dead-letter sender that remember what they were given."""

    def __init__(self) -> None:
        self.written: list[list[StoredEvent]] = []
        self.dead: list[tuple[bytes, dict[str, str]]] = []
        self.fail_with: Exception | None = None
        self.refuse_ids: set[str] = set()

    def store(self, events: Sequence[StoredEvent]) -> WriteResult:
        if self.fail_with is not None:
            raise self.fail_with
        if any(e.event_id in self.refuse_ids for e in events):
            raise sa_exc.DataError("INSERT", {}, pg_error("22P02"))
        self.written.append(list(events))
        return WriteResult(len(events), len(events))

    def dead_letter(self, data: bytes, attributes: Any) -> None:
        self.dead.append((data, dict(attributes)))


@pytest.fixture(scope="module")
def check() -> StoredEventCheck:
    return StoredEventCheck()


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
def handler(rec: Recorder, check: StoredEventCheck) -> SinkHandler:
    return SinkHandler(rec.store, check, rec.dead_letter)


def test_valid_message_is_written_in_one_batch(
    rec: Recorder, handler: SinkHandler, make_stored
) -> None:
    outcome = handler.handle(pushed(message(make_stored(1), make_stored(2)), {"event_count": "2"}))
    assert (outcome.events, outcome.inserted, outcome.dead_lettered) == (2, 2, 0)
    assert [e.event_id[-1] for e in rec.written[0]] == ["1", "2"]
    assert rec.dead == []


def test_message_without_attributes_is_fine(handler: SinkHandler, make_stored) -> None:
    assert handler.handle(PushedMessage(message(make_stored(1)))).inserted == 1


def test_duplicates_are_counted_not_dead_lettered(
    rec: Recorder, check: StoredEventCheck, make_stored
) -> None:
    def already_stored(events: Sequence[StoredEvent]) -> WriteResult:
        return WriteResult(len(events), 0)

    outcome = SinkHandler(already_stored, check, rec.dead_letter).handle(
        pushed(message(make_stored(1), make_stored(2)))
    )
    assert (outcome.inserted, outcome.duplicates, outcome.dead_lettered) == (0, 2, 0)


def test_events_of_erased_people_are_counted_suppressed_not_duplicates(
    rec: Recorder, check: StoredEventCheck, make_stored
) -> None:
    def erased_one(events: Sequence[StoredEvent]) -> WriteResult:
        return WriteResult(len(events), len(events) - 1, 1)

    outcome = SinkHandler(erased_one, check, rec.dead_letter).handle(
        pushed(message(make_stored(1), make_stored(2), make_stored(3)))
    )
    assert (outcome.inserted, outcome.duplicates, outcome.suppressed) == (2, 0, 1)
    assert outcome.dead_lettered == 0


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"not json", "message body is not JSON"),
        (b'{"v": 2, "events": []}', "message.v"),
        (b"[1, 2]", "message"),
        (b'{"v": 1}', "events"),
        (b'{"v": 1, "events": [], "extra": 1}', "unknown field"),
    ],
)
def test_undecodable_message_is_dead_lettered_with_a_reason(
    rec: Recorder, handler: SinkHandler, data: bytes, reason: str
) -> None:
    outcome = handler.handle(pushed(data, {"source": "ingest"}, "m-9"))
    assert outcome.dead_lettered == 1 and rec.written == []
    ((body, attributes),) = rec.dead
    assert body == data
    assert reason in attributes["reason"] and attributes["original_message_id"] == "m-9"
    assert attributes["source"] == "ingest" and attributes["dead_lettered_by"] == "sink"


def test_data_that_is_not_base64_is_dead_lettered_as_it_came(
    rec: Recorder, handler: SinkHandler
) -> None:
    """Regression: the sink replaced undecodable base64 with a sentinel, so the DLQ kept the
    sentinel and the original payload was lost."""
    outcome = handler.handle(PushedMessage(b"%%%not-base64", {"a": "1"}, "m-8", NOT_BASE64))
    assert outcome.dead_lettered == 1 and rec.written == []
    ((body, attributes),) = rec.dead
    assert body == b"%%%not-base64"
    assert attributes["reason"] == "message.data is not base64" and attributes["a"] == "1"


def test_contract_violations_are_dead_lettered_and_the_rest_stored(
    rec: Recorder, handler: SinkHandler, make_stored
) -> None:
    good = make_stored(1)
    unknown = msgspec.to_builtins(make_stored(2)) | {"name": "nope.x"}
    bad_props = make_stored(3, props={"node_id": "n", "colour": "red"})
    data = orjson.dumps(
        {"v": 1, "events": [msgspec.to_builtins(good), unknown, msgspec.to_builtins(bad_props)]}
    )
    outcome = handler.handle(pushed(data, {}, "m-2"))
    assert (outcome.inserted, outcome.dead_lettered) == (1, 2)
    ((body, attributes),) = rec.dead
    dead = json.loads(body)
    assert [e["event_id"][-1] for e in dead["events"]] == ["2", "3"]
    assert dead["reasons"][0] == "events[1].name: 'nope.x' is not in the event registry"
    assert "colour" in dead["reasons"][1]
    assert attributes["event_count"] == "2" and attributes["reason"] == dead["reasons"][0]


def test_stored_event_decoding_coerced_bad_input(
    rec: Recorder, handler: SinkHandler, make_stored
) -> None:
    """Regression: ``StoredEvent.from_wire`` accepted ``"1"`` as a version, ``2`` as a session
    id, a list of pairs as props and ``"1"`` as a rate; now each is refused with its path."""
    good = msgspec.to_builtins(make_stored(1))
    cases = [
        {"version": "1"},
        {"session_id": 2},
        {"props": [["a", 1]]},
        {"sample_rate": "1"},
    ]
    events = [good | change for change in cases]
    outcome = handler.handle(pushed(orjson.dumps({"v": 1, "events": events})))
    assert outcome.dead_lettered == 4 and rec.written == []
    reasons = json.loads(rec.dead[0][0])["reasons"]
    assert reasons[0].startswith("events[0].version: Expected `int`, got `str`")
    assert reasons[1].startswith("events[1].session_id: Expected `str`, got `int`")
    assert reasons[2].startswith("events[2].props")
    assert reasons[3].startswith("events[3].sample_rate: Expected `float`, got `str`")


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"event_id": "NOT-A-UUID"}, "event_id"),
        ({"event_id": "0B6C7B1E-1111-4222-8333-000000000001"}, "lower-case"),
        ({"category": "domain"}, "category"),
        ({"sample_rate": 0.0}, "sample_rate"),
        ({"sample_rate": 1.5}, "sample_rate"),
        ({"props": {"depth": 1}}, "props"),
        ({"event_ts": "yesterday"}, "event_ts"),
        ({"event_ts": "2026-11-24T12:00:00"}, "timezone"),
        ({"session_id": ""}, "session_id"),
    ],
)
def test_sink_recheck_refuses_what_ingest_would_refuse(
    rec: Recorder, handler: SinkHandler, change: dict[str, Any], fragment: str, make_stored
) -> None:
    """The sink's re-check is ingest's own check (one UUID pattern, one props check)."""
    raw = msgspec.to_builtins(make_stored(1)) | change
    outcome = handler.handle(pushed(orjson.dumps({"v": 1, "events": [raw]})))
    assert outcome.dead_lettered == 1 and rec.written == []
    assert fragment in rec.dead[0][1]["reason"]


def test_transient_database_errors_ask_for_redelivery(
    rec: Recorder, handler: SinkHandler, make_stored
) -> None:
    rec.fail_with = sa_exc.OperationalError("connect", {}, pg8000.dbapi.InterfaceError("refused"))
    with pytest.raises(ServiceUnavailable):
        handler.handle(pushed(message(make_stored(1))))
    assert rec.dead == []


def test_unexpected_error_keeps_its_type_and_is_not_dead_lettered(
    rec: Recorder, handler: SinkHandler, make_stored
) -> None:
    """A bug of ours is raised as it is (Pub/Sub retries it), never relabelled or dead-lettered."""
    rec.fail_with = TypeError("our bug")
    with pytest.raises(TypeError, match="our bug"):
        handler.handle(pushed(message(make_stored(1))))
    rec.fail_with = sa_exc.ProgrammingError("x", {}, pg_error("42703"))
    with pytest.raises(sa_exc.ProgrammingError):
        handler.handle(pushed(message(make_stored(1))))
    assert rec.dead == []


def test_rows_the_database_refuses_are_isolated_and_dead_lettered(
    rec: Recorder, handler: SinkHandler, make_stored
) -> None:
    rec.refuse_ids = {make_stored(2).event_id}
    outcome = handler.handle(pushed(message(make_stored(1), make_stored(2), make_stored(3))))
    assert outcome.inserted == 2 and outcome.dead_lettered == 1
    assert sorted(e.event_id[-1] for batch in rec.written for e in batch) == ["1", "3"]
    assert "SQLSTATE 22P02" in rec.dead[0][1]["reason"]
    dead = json.loads(rec.dead[0][0])
    assert dead["events"][0] == msgspec.to_builtins(make_stored(2))


def test_dead_letter_failure_is_transient(rec: Recorder, check: StoredEventCheck) -> None:
    def broken(data: bytes, attributes: Any) -> None:
        raise RuntimeError("no pubsub")

    handler = SinkHandler(rec.store, check, broken)
    with pytest.raises(ServiceUnavailable, match="dead-letter publish failed"):
        handler.handle(pushed(b"junk"))
