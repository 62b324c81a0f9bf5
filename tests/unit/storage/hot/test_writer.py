"""Rows and COPY text of the hot-tier writer (the COPY itself runs in the integration tests)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from shared.storage.hot.tables import api_calls_log, telemetry_events, written_columns
from shared.storage.hot.writer import call_row, copy_text, event_row

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
