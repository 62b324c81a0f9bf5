from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from shared.generator import EventGenerator
from shared.storage_layout import (
    COLD_ARCHIVE_AFTER_DAYS,
    COLD_RETENTION_DAYS,
    HOT_RETENTION_DAYS,
    WARM_RETENTION_DAYS,
    cold_object_name,
    warm_partition_prefix,
)
from shared.validation import EventValidator, check_event_time

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)


def test_same_seed_same_events() -> None:
    assert EventGenerator(seed=7, now=NOW).events(200) == EventGenerator(seed=7, now=NOW).events(
        200
    )
    assert EventGenerator(seed=7, now=NOW).events(50) != EventGenerator(seed=8, now=NOW).events(50)


def test_envelopes_are_batches_of_whole_sessions() -> None:
    bodies = list(EventGenerator(seed=3, now=NOW).envelopes(sessions=20, batch_size=10))
    assert all(1 <= len(b["events"]) <= 10 for b in bodies)
    sessions = {e["session_id"] for b in bodies for e in b["events"]}
    assert len(sessions) == 20


def test_generated_events_are_valid_and_in_the_time_window() -> None:
    validator = EventValidator()
    events = EventGenerator(seed=11, now=NOW).events(2000)
    for raw in events:
        event = validator.validate_event(raw)
        check_event_time(event.ts, NOW)
    llm = [e for e in events if e["name"] == "llm.call"]
    assert llm and all(e["props"]["price_version"] for e in llm)
    costs = [e["props"]["cost_usd"] for e in llm if e["props"]["status"] == "ok"]
    assert all(c is not None and 0 <= c < 1 for c in costs)


def test_layout_and_retention_numbers() -> None:
    assert (HOT_RETENTION_DAYS, WARM_RETENTION_DAYS, COLD_RETENTION_DAYS) == (30, 180, 730)
    assert COLD_ARCHIVE_AFTER_DAYS == 365
    assert warm_partition_prefix("api_calls_log", date(2026, 11, 24)) == (
        "analytics/api_calls_log/event_date=2026-11-24/"
    )
    with pytest.raises(ValueError, match="unknown table"):
        warm_partition_prefix("users", date(2026, 11, 24))
    digest = "ab" * 32
    assert cold_object_name(digest) == f"archives/ab/{digest}"
    with pytest.raises(ValueError, match="SHA-256"):
        cold_object_name("XYZ")
