"""The hot tier's part of retention: day partitions made ahead, and old ones dropped.

* Rows that fell into a table's DEFAULT partition get their day's partition, and partitions
  are created :data:`~shared.storage.layout.HOT_PARTITIONS_AHEAD_DAYS` ahead.
* A day partition older than the hot retention is listed with its rows, the rows past the
  snapshot's watermark (not in the warm tier yet) and its size; whether the warm tier holds it
  is the warm tier's question (``warm/expire.py``). :func:`drop` drops it only if, under the
  table's lock, it is still what was verified.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Connection, Engine, text

from shared.storage import audit
from shared.storage.hot.partitions import (
    ensure_partition,
    event_day_sql,
    list_partitions,
    partition_name,
)
from shared.storage.layout import EVENT_TABLES, HOT_PARTITIONS_AHEAD_DAYS
from shared.storage.retention_item import RetentionItem

_PARTITION_DAY = re.compile(r"_p(\d{8})$")


@dataclass(frozen=True)
class Partition:
    """A day partition of an event table, as it stood when it was looked at."""

    table: str
    name: str
    day: date
    rows: int
    #: Rows at or past the snapshot's watermark: not in the warm tier yet.
    unsnapshotted: int
    bytes: int


def create_ahead(engine: Engine, today: date, dry_run: bool) -> list[RetentionItem]:
    """Give stray rows of the DEFAULT partitions their day's partition, and create the days
    ahead; an item per partition created (or that would be, ``dry_run``), once committed."""
    items: list[RetentionItem] = []
    with engine.begin() as conn:
        for table in EVENT_TABLES:
            stray = conn.execute(
                text(
                    f"SELECT {event_day_sql(table)}, count(*) FROM {table}_default "  # noqa: S608
                    "GROUP BY 1 ORDER BY 1"
                )
            ).all()
            days = {r[0]: int(r[1]) for r in stray}
            for offset in range(-1, HOT_PARTITIONS_AHEAD_DAYS + 1):
                days.setdefault(today + timedelta(days=offset), 0)
            existing = set(list_partitions(conn, table))
            for day, rows in sorted(days.items()):
                name = partition_name(table, day)
                if name in existing:
                    continue
                if not dry_run:
                    ensure_partition(conn, table, day)
                reason = f"{rows} rows waited in {table}_default" if rows else "created ahead"
                items.append(RetentionItem("hot", name, "create", reason, rows))
    return items


def partitions_before(
    engine: Engine, table: str, cutoff: date, watermark: int
) -> Iterator[Partition]:
    """``table``'s day partitions older than ``cutoff``, oldest first, with their state
    against the snapshot's ``watermark``."""
    with engine.connect() as conn:
        names = list_partitions(conn, table)
    for name in names:
        match = _PARTITION_DAY.search(name)
        if match is None:
            continue
        day = datetime.strptime(match.group(1), "%Y%m%d").date()
        if day < cutoff:
            with engine.connect() as conn:  # closed before the caller acts on the partition
                state = _state(conn, table, name, day, watermark)
            yield state


def _state(conn: Connection, table: str, name: str, day: date, watermark: int) -> Partition:
    rows, past, size = conn.execute(
        text(
            f"SELECT count(*), count(*) FILTER (WHERE stored_seq >= :w), "  # noqa: S608
            f'pg_total_relation_size(\'"{name}"\') FROM "{name}"'
        ),
        {"w": watermark},
    ).one()
    return Partition(table, name, day, int(rows), int(past), int(size))


def drop(engine: Engine, partition: Partition, watermark: int, item: RetentionItem) -> bool:
    """Drop a verified partition, recording ``item`` in the audit log; False (and nothing
    dropped) when rows arrived since it was verified.

    ``watermark`` may be older than the snapshot's current one: a watermark only moves on, so
    rows "past" an older one are a superset, and the check stays safe.
    """
    table, name = partition.table, partition.name
    with engine.begin() as conn:
        # The parent first, as writers lock it: no deadlock. Under the lock, the partition
        # must still be what was verified: the same rows, none past the watermark.
        conn.execute(text("SET LOCAL lock_timeout = '30s'"))
        conn.execute(text(f'LOCK TABLE "{table}" IN ACCESS EXCLUSIVE MODE'))
        now = _state(conn, table, name, partition.day, watermark)
        if (now.rows, now.unsnapshotted) != (partition.rows, 0):
            return False  # nothing changed: the commit unlocks
        conn.execute(text(f'ALTER TABLE "{table}" DETACH PARTITION "{name}"'))
        conn.execute(text(f'DROP TABLE "{name}"'))
        audit.append(
            conn,
            "retention.hot.drop",
            name,
            item.reason,
            item.verified_by,
            {"day": partition.day.isoformat(), "rows": item.rows, "bytes": item.bytes},
        )
    return True
