"""Reconciliation of the hot and warm tiers: per table and day, the same rows in both.

For each day, the hot rows already behind the watermark (``stored_seq`` below the last done
run's end) are counted and digested in PostgreSQL, and compared with the sum of that day's
recorded, unretired warm files; every recorded object must also still be in the bucket with its
recorded generation. Days the hot tier no longer holds (older than its retention) are compared
by the files alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, text

from shared.policy.retention import HOT_RETENTION_DAYS
from shared.storage.hot.partitions import day_range_sql, event_day_sql
from shared.storage.layout import EVENT_TABLES
from shared.storage.warm import catalog
from shared.storage.warm.catalog import watermark
from shared.storage.warm.digest import add_digests, hot_digest_sql


@dataclass(frozen=True)
class Mismatch:
    """One disagreement between the tiers."""

    table: str
    day: date
    problem: str

    def __str__(self) -> str:
        return f"{self.table} {self.day.isoformat()}: {self.problem}"


@dataclass(frozen=True)
class DayCheck:
    """One table-day compared."""

    table: str
    day: date
    hot_rows: int
    warm_rows: int
    files: int


def reconcile(
    engine: Engine,
    bucket: Any,
    day: date | None = None,
    today: date | None = None,
    tables: Sequence[str] = tuple(EVENT_TABLES),
) -> tuple[list[DayCheck], list[Mismatch]]:
    """Compare every table-day (or one day, of some tables); ``(checks, mismatches)``."""
    today = today or datetime.now(UTC).date()
    checks: list[DayCheck] = []
    mismatches: list[Mismatch] = []
    for table in tables:
        with engine.connect() as conn:
            where = f"stored_seq < {watermark(conn, table)}"
            day_sql = event_day_sql(table)
            if day is not None:
                where += f" AND {day_range_sql(table, day)}"
            hot = {
                r[0]: (int(r[1]), str(r[2]))
                for r in conn.execute(text(hot_digest_sql(table, where, group_by=day_sql)))
            }
            files = catalog.live_files(conn, table, day)
        warm: dict[date, list[Any]] = {}
        for f in files:
            warm.setdefault(f.event_date, []).append(f)
        for each in sorted(set(hot) | set(warm)):
            hot_rows, hot_digest = hot.get(each, (0, "0"))
            day_files = warm.get(each, [])
            warm_rows = sum(int(f.rows) for f in day_files)
            warm_digest = add_digests(f.event_id_digest for f in day_files)
            checks.append(DayCheck(table, each, hot_rows, warm_rows, len(day_files)))
            for f in day_files:
                blob = bucket.get_blob(f.object_name)
                if blob is None or int(blob.generation) != int(f.generation):
                    mismatches.append(Mismatch(table, each, f"{f.object_name} is missing"))
            if each < today - timedelta(days=HOT_RETENTION_DAYS) and not hot_rows:
                continue  # the hot tier no longer holds this day
            if (hot_rows, hot_digest) != (warm_rows, warm_digest):
                problem = f"hot {hot_rows} rows, warm {warm_rows} rows"
                if hot_rows == warm_rows:
                    problem += " (same count, different event ids)"
                mismatches.append(Mismatch(table, each, problem))
    return checks, mismatches
