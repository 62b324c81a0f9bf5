"""Daily range partitions of the event tables, created ahead of time by one idempotent helper.

Each event table has a DEFAULT partition, so a row whose day has no partition yet is stored,
never lost. Creating a day's partition moves any rows of that day out of the default partition
in the same transaction (PostgreSQL refuses to attach a range the default already holds), under
an advisory lock so concurrent callers do not race.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Connection, text

from shared.storage.layout import EVENT_TABLES, HOT_PARTITIONS_AHEAD_DAYS

logger = logging.getLogger(__name__)


def partition_name(table: str, day: date) -> str:
    """Name of one day's partition, e.g. ``telemetry_events_p20261124``."""
    if table not in EVENT_TABLES:
        raise ValueError(f"unknown event table {table!r}")
    return f"{table}_p{day:%Y%m%d}"


def _bounds(day: date) -> tuple[str, str]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start.isoformat(), (start + timedelta(days=1)).isoformat()


def ensure_partition(conn: Connection, table: str, day: date) -> bool:
    """Create one day's partition if missing (moving that day's default rows); True if created."""
    name = partition_name(table, day)
    column = EVENT_TABLES[table]
    conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:t))"), {"t": table})
    exists = conn.execute(text("SELECT to_regclass(:n)"), {"n": name}).scalar()
    if exists is not None:
        return False
    lower, upper = _bounds(day)
    conn.execute(
        text(f'CREATE TABLE "{name}" (LIKE "{table}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS)')
    )
    # Identifiers come from EVENT_TABLES and partition_name (a fixed allowlist), never input.
    move_rows = (
        f'WITH moved AS (DELETE FROM "{table}_default" WHERE "{column}" >= :lo '  # noqa: S608
        f'AND "{column}" < :hi RETURNING *) INSERT INTO "{name}" SELECT * FROM moved'
    )
    moved = conn.execute(
        text(move_rows),
        {"lo": lower, "hi": upper},
    ).rowcount
    conn.execute(
        text(
            f'ALTER TABLE "{table}" ATTACH PARTITION "{name}" '
            f"FOR VALUES FROM ('{lower}') TO ('{upper}')"
        )
    )
    logger.info(
        "partition created",
        extra={"table": table, "partition": name, "rows_moved_from_default": moved},
    )
    return True


def ensure_partitions(
    conn: Connection,
    today: date | None = None,
    days_back: int = 1,
    days_ahead: int = HOT_PARTITIONS_AHEAD_DAYS,
) -> list[str]:
    """Make sure every event table has partitions for the days around ``today``; names created."""
    today = today or datetime.now(UTC).date()
    created = []
    for table in EVENT_TABLES:
        for offset in range(-days_back, days_ahead + 1):
            day = today + timedelta(days=offset)
            if ensure_partition(conn, table, day):
                created.append(partition_name(table, day))
    return created


def list_partitions(conn: Connection, table: str) -> list[str]:
    """Names of a table's attached partitions, default included, sorted."""
    rows = conn.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(:t) ORDER BY c.relname"
        ),
        {"t": table},
    )
    return [str(r[0]) for r in rows]


def event_day_sql(table: str) -> str:
    """PostgreSQL: a row's event day (UTC), the warm tier's ``event_date``."""
    return f"({EVENT_TABLES[table]} AT TIME ZONE 'UTC')::date"


def day_range_sql(table: str, day: date) -> str:
    """PostgreSQL: the rows of one event day, as a range on the partition column (so only that
    day's partition is read)."""
    column = EVENT_TABLES[table]
    start, end = day.isoformat(), (day + timedelta(days=1)).isoformat()
    return f"{column} >= '{start}T00:00:00+00:00' AND {column} < '{end}T00:00:00+00:00'"
