"""Rows and COPY text of the hot-tier writer (the COPY itself runs in the integration tests)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from enum import IntEnum

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.storage.hot.copy_format import copy_text
from shared.storage.hot.tables import api_calls_log, telemetry_events, written_columns
from shared.storage.hot.writer import call_row, event_row

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)


def test_event_and_call_rows_follow_the_table_columns(make_stored) -> None:
    event = make_stored(1)
    row = dict(zip(written_columns(telemetry_events), event_row(event), strict=True))
    assert row["event_id"] == event.event_id and row["props"] == {"node_id": "n-1"}
    assert row["event_ts"] == NOW and row["user_key"] == "ab" * 32
    call = make_stored(
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
    row = dict(zip(written_columns(api_calls_log), call_row(call), strict=True))
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


_COPY_UNESCAPES = {"\\\\": "\\", "\\t": "\t", "\\n": "\n", "\\r": "\r"}


def _copy_unescape(field: str) -> str | None:
    """A COPY text field read back as PostgreSQL reads it (the escapes the writer emits)."""
    if field == "\\N":
        return None
    return re.sub(r"\\[\\tnr]", lambda m: _COPY_UNESCAPES[m.group()], field)


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(),
    props=st.dictionaries(
        st.text(),
        st.one_of(st.text(), st.integers(-(2**63), 2**63 - 1), st.booleans(), st.none()),
        max_size=4,
    ),
)
def test_copy_text_reads_back_as_the_values_it_was_given(
    text: str, props: dict[str, object]
) -> None:
    """Strings with any character, and JSON whose strings hold backslashes and control
    characters, come back unchanged once PostgreSQL unescapes the field."""
    rendered = copy_text([(text, props, None)]).decode("utf-8")
    assert rendered.endswith("\n")
    fields = rendered[:-1].split("\t")
    assert len(fields) == 3
    assert _copy_unescape(fields[0]) == text
    assert json.loads(_copy_unescape(fields[1]) or "null") == props
    assert _copy_unescape(fields[2]) is None


class _Level(IntEnum):
    HIGH = 3


def test_copy_text_renders_subclasses_of_the_column_types() -> None:
    class Name(str):
        pass

    assert copy_text([(Name("a\tb"), _Level.HIGH)]).decode() == "a\\tb\t3\n"
