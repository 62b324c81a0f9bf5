"""The sink's logic with the database and Pub/Sub faked (integration tests use the real ones)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pg8000.dbapi
import pytest
import sink_logic
from cloudevents.http import CloudEvent
from sink_logic import SinkHandler, recheck
from sqlalchemy import exc as sa_exc

from shared.db_errors import classify, sqlstate
from shared.errors import ContractViolation, ServiceUnavailable
from shared.hot_store import WriteResult, call_row, copy_text, event_row
from shared.records import StoredEvent, encode_batches
from shared.registry import default_registry
from shared.tables import api_calls_log, telemetry_events
from tests.helpers import load_function_main

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)


def stored(
    i: int = 0, name: str = "node.expand", props: dict[str, Any] | None = None, **kw: Any
) -> StoredEvent:
    values: dict[str, Any] = {
        "event_id": f"0b6c7b1e-1111-4222-8333-{i:012d}",
        "name": name,
        "version": 1,
        "category": default_registry().get(name, 1).category,
        "event_ts": NOW,
        "received_at": NOW,
        "session_id": "s-1",
        "props": props if props is not None else {"node_id": f"n-{i}"},
        "sample_rate": 1.0,
        "user_key": "ab" * 32,
        "key_id": "k1",
    }
    values.update(kw)
    return StoredEvent(**values)


def message(*events: StoredEvent) -> bytes:
    ((body, _),) = list(encode_batches(list(events)))
    return body


def pg_error(code: str) -> pg8000.dbapi.DatabaseError:
    return pg8000.dbapi.DatabaseError({"S": "ERROR", "C": code, "M": "boom"})


class Recorder:
    def __init__(self) -> None:
        self.written: list[list[StoredEvent]] = []
        self.dead: list[tuple[bytes, dict[str, str]]] = []
        self.fail_with: Exception | None = None
        self.refuse_ids: set[str] = set()

    def write(self, engine: Any, events: list[StoredEvent]) -> WriteResult:
        if self.fail_with is not None:
            raise self.fail_with
        if any(e.event_id in self.refuse_ids for e in events):
            raise sa_exc.DataError("INSERT", {}, pg_error("22P02"))
        self.written.append(list(events))
        return WriteResult(len(events), len(events))

    def dead_letter(self, data: bytes, attributes: Any) -> None:
        self.dead.append((data, dict(attributes)))


@pytest.fixture
def rec(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    recorder = Recorder()
    monkeypatch.setattr(sink_logic, "write_events", recorder.write)
    return recorder


def handler(rec: Recorder) -> SinkHandler:
    return SinkHandler(object, default_registry(), rec.dead_letter)  # type: ignore[arg-type, return-value]


def test_valid_message_is_written_in_one_batch(rec: Recorder) -> None:
    outcome = handler(rec).handle_message(
        message(stored(1), stored(2)), {"event_count": "2"}, "m-1"
    )
    assert (outcome.events, outcome.inserted, outcome.dead_lettered) == (2, 2, 0)
    assert [e.event_id[-1] for e in rec.written[0]] == ["1", "2"]
    assert rec.dead == []


def test_message_without_attributes_is_fine(rec: Recorder) -> None:
    assert handler(rec).handle_message(message(stored(1)), None, None).inserted == 1


@pytest.mark.parametrize("data", [b"not json", b'{"v": 2, "events": []}', b"[1, 2]", b'{"v": 1}'])
def test_undecodable_message_is_dead_lettered_with_a_reason(rec: Recorder, data: bytes) -> None:
    outcome = handler(rec).handle_message(data, {"source": "ingest"}, "m-9")
    assert outcome.dead_lettered == 1 and rec.written == []
    ((body, attributes),) = rec.dead
    assert body == data
    assert attributes["reason"] and attributes["original_message_id"] == "m-9"
    assert attributes["source"] == "ingest" and attributes["dead_lettered_by"] == "sink"


def test_contract_violations_are_dead_lettered_and_the_rest_stored(rec: Recorder) -> None:
    good = stored(1)
    unknown = stored(2).to_wire() | {"name": "nope.x"}
    bad_props = stored(3, props={"node_id": "n", "colour": "red"})
    data = orjson.dumps({"v": 1, "events": [good.to_wire(), unknown, bad_props.to_wire()]})
    outcome = handler(rec).handle_message(data, {}, "m-2")
    assert (outcome.inserted, outcome.dead_lettered) == (1, 2)
    ((body, attributes),) = rec.dead
    dead = json.loads(body)
    assert [e["event_id"][-1] for e in dead["events"]] == ["2", "3"]
    assert dead["reasons"][0] == "name: 'nope.x' is not in the event registry"
    assert "colour" in dead["reasons"][1]
    assert attributes["event_count"] == "2" and attributes["reason"] == dead["reasons"][0]


def test_transient_database_errors_ask_for_redelivery(rec: Recorder) -> None:
    rec.fail_with = sa_exc.OperationalError("connect", {}, pg8000.dbapi.InterfaceError("refused"))
    with pytest.raises(ServiceUnavailable):
        handler(rec).handle_message(message(stored(1)), {}, "m-3")
    assert rec.dead == []


def test_rows_the_database_refuses_are_isolated_and_dead_lettered(rec: Recorder) -> None:
    rec.refuse_ids = {stored(2).event_id}
    outcome = handler(rec).handle_message(message(stored(1), stored(2), stored(3)), {}, "m-4")
    assert outcome.inserted == 2 and outcome.dead_lettered == 1
    assert sorted(e.event_id[-1] for batch in rec.written for e in batch) == ["1", "3"]
    assert "SQLSTATE 22P02" in rec.dead[0][1]["reason"]


def test_dead_letter_failure_is_transient(rec: Recorder) -> None:
    def broken(data: bytes, attributes: Any) -> None:
        raise RuntimeError("no pubsub")

    h = SinkHandler(object, default_registry(), broken)  # type: ignore[arg-type, return-value]
    with pytest.raises(ServiceUnavailable, match="dead-letter publish failed"):
        h.handle_message(b"junk", {}, "m-5")


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"event_id": "NOT-A-UUID"}, "event_id"),
        ({"category": "domain"}, "category"),
        ({"sample_rate": 0.0}, "sample_rate"),
        ({"props": {"depth": 1}}, "props"),
        ({"event_ts": "yesterday"}, "malformed"),
    ],
)
def test_recheck_refuses_what_breaks_the_contract(change: dict[str, Any], fragment: str) -> None:
    raw = stored(1).to_wire() | change
    with pytest.raises(ContractViolation, match=fragment):
        recheck(raw, default_registry())
    with pytest.raises(ContractViolation, match="not an object"):
        recheck([1], default_registry())
    with pytest.raises(ContractViolation, match="lacks 'name'"):
        recheck({k: v for k, v in stored(1).to_wire().items() if k != "name"}, default_registry())


def test_event_and_call_rows_follow_the_table_columns() -> None:
    event = stored(1)
    row = dict(zip(telemetry_events.columns.keys(), event_row(event), strict=True))
    assert row["event_id"] == event.event_id and row["props"] == {"node_id": "n-1"}
    assert row["event_ts"] == NOW and row["user_key"] == "ab" * 32
    call = stored(
        2,
        name="llm.call",
        props={
            "provider": "anthropic",
            "model": "claude-sonnet-4",
            "operation": "x",
            "latency_ms": 12.5,
            "status": "ok",
            "input_tokens": 10,
            "cost_usd": 0.0123,
            "price_version": "2026-11-01",
        },
    )
    row = dict(zip(api_calls_log.columns.keys(), call_row(call), strict=True))
    assert row["call_id"] == call.event_id and row["ts"] == NOW
    assert row["input_tokens"] == 10 and row["output_tokens"] == 0 and row["reasoning_tokens"] == 0
    assert row["retry_count"] == 0 and row["fallback_used"] is False and row["streamed"] is False
    assert row["cost_usd"] == 0.0123 and row["error_type"] is None


def test_copy_text_escapes_and_nulls() -> None:
    text = copy_text([("a\tb", None, True, {"k": "x\ny\\"}, 1.5, Decimal("0.1"), NOW, 7)]).decode()
    fields = text.rstrip("\n").split("\t")
    assert fields[0] == "a\\tb" and fields[1] == "\\N" and fields[2] == "t"
    assert fields[3] == '{"k":"x\\\\ny\\\\\\\\"}'
    assert fields[4:] == ["1.5", "0.1", NOW.isoformat(), "7"]


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (sa_exc.OperationalError("x", {}, pg_error("08006")), True),
        (sa_exc.OperationalError("x", {}, pg_error("57P01")), True),
        (sa_exc.DBAPIError("x", {}, pg_error("40001")), True),
        (sa_exc.DBAPIError("x", {}, pg_error("40P01")), True),
        (sa_exc.DBAPIError("x", {}, pg_error("53300")), True),
        (sa_exc.ProgrammingError("x", {}, pg_error("42P01")), True),
        (sa_exc.DataError("x", {}, pg_error("22P02")), False),
        (sa_exc.IntegrityError("x", {}, pg_error("23502")), False),
        (sa_exc.TimeoutError("pool"), True),
        (ConnectionResetError(), True),
        (pg8000.dbapi.InterfaceError("network"), True),
        (sa_exc.OperationalError("x", {}, Exception("no code")), True),
        (ValueError("surprise"), True),
    ],
)
def test_error_classification(error: BaseException, transient: bool) -> None:
    assert classify(error).transient is transient


def test_sqlstate_reads_wrapped_and_bare_errors() -> None:
    assert sqlstate(sa_exc.DataError("x", {}, pg_error("22001"))) == "22001"
    assert sqlstate(pg_error("40001")) == "40001"
    assert sqlstate(ValueError()) is None
    already = ContractViolation("x")
    assert classify(already) is already


def test_unwrap_cloud_event_with_and_without_attributes() -> None:
    sink_main = load_function_main("sink")

    data = base64.b64encode(b"payload").decode()
    event = CloudEvent(
        {
            "type": "google.cloud.pubsub.topic.v1.messagePublished",
            "source": "//pubsub",
            "id": "ce-1",
        },
        {"message": {"data": data, "messageId": "m-7"}},
    )
    assert sink_main.unwrap(event) == (b"payload", {}, "m-7")
    event = CloudEvent(
        {"type": "t", "source": "s", "id": "ce-2"},
        {"message": {"data": "!!!", "attributes": {"a": 1}}},
    )
    raw, attributes, message_id = sink_main.unwrap(event)
    assert raw.startswith(b"\x00") and attributes == {"a": "1"} and message_id == "ce-2"
