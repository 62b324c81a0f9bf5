from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.contract.validation import EventValidator, TimeWindow, parse_ts
from shared.errors import ContractViolation, UnknownEvent

EVENT_ID = "0b6c7b1e-1111-4222-8333-444455556666"


@pytest.fixture(scope="module")
def validator() -> EventValidator:
    return EventValidator()


def view(**overrides: object) -> dict[str, object]:
    event: dict[str, object] = {
        "event_id": EVENT_ID,
        "name": "detail_panel.view",
        "ts": "2026-11-24T10:00:00.123Z",
        "props": {"node_id": "n-17", "panel": "bias", "duration_ms": 840},
    }
    event.update(overrides)
    return event


def test_context_fills_unset_fields_and_version_defaults(validator: EventValidator) -> None:
    event = validator.validate_event(
        view(conversation_id="c-own"),
        {
            "session_id": "s-1",
            "user_id": "u-42",
            "conversation_id": "c-ctx",
            "app_version": "1.8.0",
        },
    )
    assert event.version == 1
    assert event.session_id == "s-1" and event.user_id == "u-42"
    assert event.conversation_id == "c-own"
    assert event.app_version == "1.8.0"
    assert event.category == "ui"
    assert event.ts == datetime(2026, 11, 24, 10, 0, 0, 123000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        (
            {"props": {"node_id": "n", "panel": "x"}},
            "props.panel: 'x' is not one of ['bias', 'severity', 'frames', 'simulacra', 'sources']",
        ),
        ({"props": {"panel": "bias"}}, "props: missing required 'node_id'"),
        (
            {"props": {"node_id": "n", "panel": "bias", "colour": "red"}},
            "props: undeclared 'colour' (not in the schema)",
        ),
        (
            {"props": {"node_id": "n", "panel": "bias", "duration_ms": -1}},
            "props.duration_ms: -1 is less than the minimum of 0",
        ),
        ({"event_id": "not-a-uuid"}, 'event_id: "not-a-uuid" does not match'),
        ({"ts": "yesterday"}, 'ts: "yesterday" is not a "date-time"'),
        ({"version": "1"}, 'version: "1" is not of type "integer"'),
        ({"extra": 1}, "event: undeclared 'extra'"),
    ],
)
def test_reasons_name_the_field_and_rule(
    validator: EventValidator, overrides: dict[str, object], reason: str
) -> None:
    with pytest.raises(ContractViolation) as info:
        validator.validate_event(view(**overrides), {"session_id": "s-1"})
    assert info.value.reason.startswith(reason), info.value.reason


def test_missing_session_and_unknown_event(validator: EventValidator) -> None:
    with pytest.raises(ContractViolation, match="missing required 'session_id'"):
        validator.validate_event(view())
    with pytest.raises(UnknownEvent, match="'nope.x' is not in the event registry"):
        validator.validate_event(view(name="nope.x"), {"session_id": "s"})
    with pytest.raises(ContractViolation, match="must be an object"):
        validator.validate_event(["x"], {"session_id": "s"})


def test_long_values_are_shortened_in_reasons(validator: EventValidator) -> None:
    with pytest.raises(ContractViolation) as info:
        validator.validate_event(
            view(props={"node_id": "n" * 500, "panel": "bias"}), {"session_id": "s"}
        )
    assert len(info.value.reason) < 200


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({}, "body: missing required 'events'"),
        ({"events": []}, "events: [] has less than 1 item"),
        ({"events": {}}, 'events: {} is not of type "array"'),
        ([1], 'body: [1] is not of type "object"'),
        ({"events": [{}], "context": {"user_id": 5}}, 'context.user_id: 5 is not of type "string"'),
        ({"events": [{}], "junk": 1}, "body: undeclared 'junk'"),
    ],
)
def test_envelope_problems(validator: EventValidator, body: object, reason: str) -> None:
    with pytest.raises(ContractViolation) as info:
        validator.validate_envelope(body)
    assert info.value.reason.startswith(reason), info.value.reason


def test_envelope_returns_context_and_events(validator: EventValidator) -> None:
    context, events = validator.validate_envelope(
        {"context": {"session_id": "s"}, "events": [1, 2]}
    )
    assert context == {"session_id": "s"} and events == [1, 2]


def test_time_window() -> None:
    now = datetime(2026, 11, 24, 12, tzinfo=UTC)
    window = TimeWindow.around(now)
    window.check(now + timedelta(hours=23))
    window.check(now - timedelta(days=29))
    with pytest.raises(ContractViolation, match="more than 24 h in the future"):
        window.check(now + timedelta(hours=25))
    with pytest.raises(ContractViolation, match="older than the hot tier's retention of 30 days"):
        window.check(now - timedelta(days=31))


def test_parse_ts_requires_a_zone() -> None:
    assert parse_ts("2026-11-24T10:00:00+02:00") == datetime(2026, 11, 24, 8, tzinfo=UTC)
    with pytest.raises(ValueError, match="time zone"):
        parse_ts("2026-11-24T10:00:00")
