"""Where each tier keeps its data: prefixes, tables and object names, the one place every tier
reads. How long each tier keeps it is a policy (:mod:`shared.policy.retention`).
"""

from __future__ import annotations

from datetime import date
from typing import Literal, get_args

#: Days of partitions created ahead of today in the hot tier.
HOT_PARTITIONS_AHEAD_DAYS = 7

#: What a query over the event tables reads: both tiers (no row twice), or one.
Tier = Literal["both", "hot", "warm"]
TIERS: tuple[str, ...] = get_args(Tier)

WARM_PREFIX = "analytics/"
COLD_PREFIX = "archives/"

#: A table of the hot tier that holds events (a request naming tables is typed with it).
EventTable = Literal["telemetry_events", "api_calls_log"]
#: Each event table, mapped to the column that partitions it by day (the one home of this map:
#: partitions, snapshots and retention read it from here).
EVENT_TABLES: dict[str, str] = dict(zip(get_args(EventTable), ("event_ts", "ts"), strict=True))


def warm_partition_prefix(table: str, event_date: date) -> str:
    """Object prefix of one day of one table in the warm tier (hive-partitioned)."""
    if table not in EVENT_TABLES:
        raise ValueError(f"unknown table {table!r}; expected one of {sorted(EVENT_TABLES)}")
    return f"{WARM_PREFIX}{table}/event_date={event_date.isoformat()}/"


def cold_object_name(content_hash: str) -> str:
    """Object name of a content-addressed cold archive (the hash names the object)."""
    if len(content_hash) != 64 or any(c not in "0123456789abcdef" for c in content_hash):
        raise ValueError("content_hash must be a lower-case hex SHA-256")
    return f"{COLD_PREFIX}{content_hash[:2]}/{content_hash}"
