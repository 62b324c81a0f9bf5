from __future__ import annotations

from datetime import date

import pytest

from shared.policy.retention import (
    COLD_ARCHIVE_AFTER_DAYS,
    COLD_RETENTION_DAYS,
    HOT_RETENTION_DAYS,
    WARM_RETENTION_DAYS,
)
from shared.storage.hot.tables import api_calls_log, telemetry_events
from shared.storage.layout import EVENT_TABLES, cold_object_name, warm_partition_prefix


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


def test_every_event_table_is_defined_with_its_partition_column() -> None:
    tables = {t.name: t for t in (telemetry_events, api_calls_log)}
    assert set(EVENT_TABLES) == set(tables)
    for name, column in EVENT_TABLES.items():
        assert column in tables[name].columns
