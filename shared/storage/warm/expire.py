"""The warm tier's part of retention: whether it holds a hot day, and its own old days deleted.

* :func:`holds` answers retention's question before a hot partition is dropped: do the day's
  recorded files hold every one of its rows? First by reconciliation (count and event-id
  digest, objects present); failing that, every event id is looked up in the files.
* :func:`expire` deletes the files of days older than the warm retention, under the table's
  lock (no snapshot or compaction meanwhile), and forgets them in the catalog with an audit
  entry, day by day.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Engine

from shared.policy.retention import WARM_RETENTION_DAYS
from shared.settings import Settings
from shared.storage import audit
from shared.storage.gcs import purge
from shared.storage.layout import EVENT_TABLES
from shared.storage.retention_item import RetentionItem
from shared.storage.warm import catalog, export
from shared.storage.warm.catalog import table_lock
from shared.storage.warm.columns import ID_COLUMNS
from shared.storage.warm.reconcile import reconcile

#: How long retention waits for a running snapshot or compaction of a table.
LOCK_WAIT_S = 900.0


@dataclass(frozen=True)
class Holding:
    """Whether the warm tier holds every row of a hot partition, how that was verified, or why
    not."""

    held: bool
    verified_by: str = ""
    problem: str = ""


def holds(
    settings: Settings,
    engine: Engine,
    bucket: Any,
    table: str,
    partition: str,
    day: date,
    rows: int,
) -> Holding:
    """Whether the day's recorded warm files hold every one of the partition's ``rows``."""
    checks, mismatches = reconcile(engine, bucket, day, today=day, tables=[table])
    check = next((c for c in checks if c.table == table), None)
    mine = [m for m in mismatches if m.table == table]
    if check is not None and not mine and check.hot_rows == rows:
        return Holding(
            True,
            f"reconciled: {check.files} recorded warm files hold its {rows} rows "
            "(count and event-id digest equal, objects present)",
        )
    if any("missing" in m.problem for m in mine):
        return Holding(False, problem="; ".join(str(m) for m in mine))
    missing = _ids_missing(settings, engine, table, partition, day)
    if missing == 0:
        return Holding(True, f"every one of its {rows} event ids found in the day's warm files")
    return Holding(False, problem=f"{missing} of its {rows} rows are not in the day's warm files")


def _ids_missing(settings: Settings, engine: Engine, table: str, partition: str, day: date) -> int:
    """Event ids of the partition that no recorded warm file of the day holds."""
    from shared.storage.warm.query import gcs_filesystem

    with engine.connect() as conn:
        files = [
            f"gs://{settings.telemetry_bucket}/{r[0]}" for r in catalog.live_files(conn, table, day)
        ]
    column = ID_COLUMNS[table]
    hot = export.sql_string(f'SELECT {column}::text AS id FROM "{partition}"')  # noqa: S608
    with export.workspace(settings) as space:
        con = space.con
        con.register_filesystem(gcs_filesystem(settings))
        if not files:
            query = f"SELECT count(*) FROM postgres_query('pg', {hot})"  # noqa: S608
        else:
            listing = "[" + ", ".join(export.sql_string(f) for f in files) + "]"
            query = (
                f"SELECT count(*) FROM postgres_query('pg', {hot}) h ANTI JOIN "  # noqa: S608
                f"(SELECT {column} AS id FROM read_parquet({listing}, union_by_name = true)) w "
                "ON h.id = w.id"
            )
        return int(con.execute(query).fetchone()[0])


def expire(engine: Engine, bucket: Any, today: date, dry_run: bool) -> Iterator[RetentionItem]:
    """Delete the warm days older than the warm retention; an item per table and day."""
    cutoff = today - timedelta(days=WARM_RETENTION_DAYS)
    for table in EVENT_TABLES:
        with engine.connect() as conn:
            days = catalog.days_before(conn, table, cutoff)
        if not days:
            continue
        if dry_run:
            for day, files, rows, size in days:
                yield _item(table, day, files, rows, size)
            continue
        with table_lock(engine, table, wait_s=LOCK_WAIT_S):
            for day, files, rows, size in days:
                item = _item(table, day, files, rows, size)
                _delete_day(engine, bucket, table, day, item)
                yield item


def _item(table: str, day: date, files: int, rows: int, size: int) -> RetentionItem:
    return RetentionItem(
        "warm",
        f"{table} {day.isoformat()} ({files} files)",
        "delete",
        f"older than {WARM_RETENTION_DAYS} days",
        int(rows),
        int(size),
        "the age of the day",
    )


def _delete_day(engine: Engine, bucket: Any, table: str, day: date, item: RetentionItem) -> None:
    with engine.connect() as conn:
        names = sorted(catalog.recorded_names(conn, table, day))
    for name in names:
        purge(bucket, name)
    with engine.begin() as conn:
        catalog.forget_day(conn, table, day)
        audit.append(
            conn,
            "retention.warm.delete",
            f"{table} {day.isoformat()}",
            item.reason,
            item.verified_by,
            {"files": len(names), "rows": item.rows, "bytes": item.bytes},
        )
