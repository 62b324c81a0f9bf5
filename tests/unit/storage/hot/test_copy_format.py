"""The compiled COPY lines agree with ``copy_text`` for every event, and stay on the fast path
for ordinary ones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.storage.hot.copy_format import LineRenderer, copy_field
from shared.storage.hot.tables import telemetry_events
from shared.storage.hot.writer import _LINES, call_row, event_row
from tests.unit.conftest import _stored

EVENT_LINE = _LINES["telemetry_events"]
CALL_LINE = _LINES["api_calls_log"]

#: Strings that need escaping, that look like escapes, or that are empty.
awkward_text = st.one_of(
    st.text(),
    st.sampled_from(["", "\\N", "\\", "a\tb", "x\ny", "\r", '"quoted"', "naïve ✓"]),
)
optional_text = st.one_of(st.none(), awkward_text)
number = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.decimals(allow_nan=False, allow_infinity=False, places=4),
)
#: A prop value of any type, including ones its column does not expect.
any_value = st.one_of(st.none(), st.booleans(), number, awkward_text)
#: A value a decoded JSON object may hold.
json_value = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    awkward_text,
)


def slow_line(event: Any, row: Any) -> str:
    return "\t".join(map(copy_field, row(event)))


@settings(max_examples=300, deadline=None)
@given(
    session=awkward_text,
    app_version=optional_text,
    conversation=optional_text,
    user_key=optional_text,
    props=st.dictionaries(awkward_text, st.one_of(json_value, st.lists(json_value)), max_size=4),
    sample_rate=st.one_of(st.floats(0.0001, 1.0), st.just(1)),
    offset_s=st.integers(-(10**6), 10**6),
)
def test_an_event_line_is_the_line_copy_text_would_write(
    session: str,
    app_version: str | None,
    conversation: str | None,
    user_key: str | None,
    props: dict[str, Any],
    sample_rate: float,
    offset_s: int,
) -> None:
    event = _stored(
        1,
        session_id=session,
        app_version=app_version,
        conversation_id=conversation,
        user_key=user_key,
        props=props,
        sample_rate=sample_rate,
        event_ts=datetime(2026, 11, 24, tzinfo=UTC) + timedelta(seconds=offset_s),
    )
    assert EVENT_LINE(event) == slow_line(event, event_row)


CALL_PROPS = (
    "provider",
    "model",
    "operation",
    "status",
    "latency_ms",
    "input_tokens",
    "cost_usd",
    "fallback_used",
    "streamed",
    "error_type",
    "retry_count",
)


@settings(max_examples=300, deadline=None)
@given(props=st.fixed_dictionaries({}, optional=dict.fromkeys(CALL_PROPS, any_value)))
def test_a_call_line_is_the_line_copy_text_would_write(props: dict[str, Any]) -> None:
    """Missing props take their defaults, and values of unexpected types (a bool for a count,
    an int for a float, a Decimal cost) are written as ``copy_text`` writes them."""
    event = _stored(2, name="llm.call", props=props)
    assert CALL_LINE(event) == slow_line(event, call_row)


def test_a_value_that_looks_like_null_is_escaped_not_taken_for_null() -> None:
    """Regression: a line's backslashes are allowed only as its NULLs; ``\\N`` inside a value
    is escaped, or PostgreSQL would read the value wrongly."""
    event = _stored(3, app_version="\\N", conversation_id=None)
    fields = EVENT_LINE(event).split("\t")
    assert fields[event_row_index("app_version")] == "\\\\N"
    assert fields[event_row_index("conversation_id")] == "\\N"


def test_ordinary_events_take_the_fast_path(make_stored, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(_: Any) -> None:
        raise AssertionError("rendered the slow way")

    monkeypatch.setattr(EVENT_LINE, "row", refuse)
    monkeypatch.setattr(CALL_LINE, "row", refuse)
    calls = {
        "provider": "anthropic",
        "model": "claude-sonnet-4",
        "operation": "summarise",
        "latency_ms": 812.5,
        "status": "ok",
        "input_tokens": 1200,
        "cost_usd": Decimal("0.0123"),
        "streamed": True,
    }
    assert EVENT_LINE(make_stored(4, conversation_id=None)).count("\t") == 12
    assert "\tt\t" in CALL_LINE(make_stored(5, name="llm.call", props=calls))


def test_a_column_name_that_is_not_an_identifier_is_refused() -> None:
    with pytest.raises(ValueError, match="not an identifier"):
        LineRenderer(telemetry_events, ["event id"], {}, {}, event_row)


def event_row_index(column: str) -> int:
    return list(telemetry_events.columns.keys()).index(column)
