"""The sink's check of stored events: ingest's contract on the typed event, nothing rebuilt."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from shared.contract.registry.loader import EventSpec, Registry
from shared.contract.stored_check import StoredEventCheck
from shared.contract.stored_event import StoredEvent
from shared.contract.validation import EventValidator
from shared.errors import ContractViolation


@pytest.fixture(scope="module")
def check() -> StoredEventCheck:
    return StoredEventCheck()


def _raw(event: StoredEvent, **changes: Any) -> bytes:
    return msgspec.json.encode(msgspec.to_builtins(event) | changes)


def test_a_valid_event_decodes_to_the_event_it_was(check: StoredEventCheck, make_stored) -> None:
    event = make_stored(3, props={"node_id": "n-3", "depth": 2, "child_count": 7})
    decoded = check.decode(_raw(event))
    assert isinstance(decoded, StoredEvent)
    assert msgspec.to_builtins(decoded) == msgspec.to_builtins(event)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"name": "x" * 65}, "events[4].name: Expected `str` of length <= 64"),
        ({"version": 0}, "events[4].version: Expected `int` >= 1"),
        ({"session_id": "s" * 129}, "events[4].session_id: Expected `str` of length <= 128"),
        ({"app_version": "v" * 65}, "events[4].app_version: Expected `str` of length <= 64"),
        ({"event_id": "0b6c7b1e-1111-4222-8333"}, "events[4].event_id: Expected `str` matching"),
        ({"props": {"node_id": "n", "depth": 65}}, "events[4].props.depth: 65 is greater than"),
        ({"props": {"node_id": "n", "colour": 1}}, "events[4].props: undeclared 'colour'"),
        ({"category": "domain"}, "events[4].category: 'domain' is not the registry's 'ui'"),
        ({"name": "nope.x"}, "events[4].name: 'nope.x' is not in the event registry"),
    ],
)
def test_what_ingest_refuses_is_refused_naming_the_field(
    check: StoredEventCheck, make_stored, change: dict[str, Any], reason: str
) -> None:
    """Frame limits come from the frame schema, props rules from the event's schema; every
    reason is rooted at the event's place in its message."""
    with pytest.raises(ContractViolation) as info:
        check.decode(_raw(make_stored(1), **change), "events[4]")
    assert info.value.reason.startswith(reason), info.value.reason
    assert info.value.field is not None and info.value.field.startswith("events[4].")


def test_an_integer_written_as_a_float_is_left_to_the_schema(
    check: StoredEventCheck, make_stored
) -> None:
    """JSON Schema counts ``2.0`` as an integer; the compiled props type refuses it, so
    jsonschema-rs decides instead of the stricter translation refusing a valid event."""
    raw = _raw(make_stored(1), props={"node_id": "n", "depth": 2.0})
    assert check.decode(raw).props["depth"] == 2.0


def test_a_props_schema_without_a_faithful_type_is_checked_by_the_schema(make_stored) -> None:
    schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {"day": {"type": "string", "format": "date"}},
    }
    spec = EventSpec("demo.dated", 1, "ui", "team", "A dated event.", schema)
    check = StoredEventCheck(EventValidator(Registry("memory", {("demo.dated", 1): spec})))
    good = make_stored(1, props={"day": "2026-12-02"})
    good = msgspec.structs.replace(good, name="demo.dated")
    assert check.decode(_raw(good)).props == {"day": "2026-12-02"}
    with pytest.raises(ContractViolation, match=r"event\.props\.day: .*date"):
        check.decode(_raw(good, props={"day": "yesterday"}))


def test_the_check_never_rebuilds_the_event_as_a_dict(
    check: StoredEventCheck, make_stored, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: the sink turned each typed event back into a dict, its time back into text,
    and ran ingest's whole-event validator on it."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the slow whole-event validator was called")

    monkeypatch.setattr(EventValidator, "validate_event", refuse)
    assert check.decode(_raw(make_stored(2))).event_id.endswith("2")
