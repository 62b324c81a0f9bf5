"""The warm tier's catalog: which Parquet files hold each table's rows, and the one way a file
gets there.

A warm file counts only once it is verified and recorded in ``warm_files``. Snapshot,
compaction and erasure each produce files (from the hot tier, from other warm files, from a
file without one person); they all write them through :func:`write_verified`, which checks the
local file against what it must hold (row count and event-id digest, the Parquet footer, and,
for an erasure, that the erased people are gone) and uploads it create-only, so the stored
object's CRC32C is the checked file's. :func:`record` and :func:`retire` then change the
catalog in the caller's transaction.

The table's warm-tier lock (:func:`table_lock`: one writer per table at a time) and its
watermark (:func:`watermark`: where the snapshots of the table end) live here too.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, text

from shared.errors import AlreadyRunning
from shared.storage.warm import objects
from shared.storage.warm.digest import file_digest, footer_rows
from shared.storage.warm.erasure_index import build_index, distinct_user_keys, files_that_may_hold

#: The tables a snapshot writer updates besides inserting (its runs, and the files it retires);
#: ``telemetry db migrate --grant-to`` grants exactly these.
WRITER_UPDATES = ("snapshot_runs", "warm_files")


class SnapshotAlreadyRunning(AlreadyRunning):
    """Another writer of the same table (snapshot, compaction, erasure) holds its lock."""


@dataclass(frozen=True)
class WarmFile:
    """One verified file of the warm tier, as ``warm_files`` records it."""

    object_name: str
    table: str
    day: date
    rows: int
    size: int
    generation: int
    crc32c: str
    digest: str
    seq_lo: int
    seq_hi: int
    user_keys: int = 0
    user_key_index: bytes = b""


def write_verified(
    con: Any,
    bucket: Any,
    path: Path,
    name: str,
    expected: tuple[int, str],
    placed: tuple[str, date, int, int],
    refusal: str,
    absent_keys: Collection[str] = (),
) -> WarmFile:
    """Check the local Parquet file at ``path`` and upload it as ``name``; the file to record.

    ``expected`` is ``(rows, event-id digest)`` the file must hold; ``placed`` its table, day
    and stored-sequence range; ``absent_keys`` user keys it must not hold (an erasure's). A
    failed check raises :class:`objects.VerificationFailed` with ``refusal`` (what the caller
    does about it) and uploads nothing. The local file is removed in every case.
    """
    table, day, seq_lo, seq_hi = placed
    try:
        written = file_digest(con, table, [path])
        keys = distinct_user_keys(con, path)
        footer = footer_rows(con, path)
        if written != expected or footer != expected[0] or set(keys) & set(absent_keys):
            raise objects.VerificationFailed(
                f"{name}: the file holds {written[0]} rows (footer {footer}), {expected[0]} "
                f"expected (or their event ids differ); {refusal}"
            )
        stored = objects.upload_create_only(bucket, name, path)
    finally:
        path.unlink(missing_ok=True)
    return WarmFile(
        name,
        table,
        day,
        expected[0],
        stored.size,
        stored.generation,
        stored.crc32c,
        expected[1],
        seq_lo,
        seq_hi,
        len(keys),
        build_index(keys),
    )


def record(conn: Connection, file: WarmFile) -> None:
    """Add a verified file to the catalog (again: nothing changes)."""
    conn.execute(
        text(
            "INSERT INTO warm_files (object_name, table_name, event_date, generation, rows, "
            "bytes, crc32c, event_id_digest, seq_lo, seq_hi, user_keys, user_key_index) "
            "VALUES (:n, :t, :d, :g, :r, :b, :c, :x, :lo, :hi, :u, :i) "
            "ON CONFLICT (object_name) DO NOTHING"
        ),
        {
            "n": file.object_name,
            "t": file.table,
            "d": file.day,
            "g": file.generation,
            "r": file.rows,
            "b": file.size,
            "c": file.crc32c,
            "x": file.digest,
            "lo": file.seq_lo,
            "hi": file.seq_hi,
            "u": file.user_keys,
            "i": file.user_key_index,
        },
    )


def retire(conn: Connection, names: Collection[str], reason: str | None = None) -> None:
    """Take files out of the warm tier's reads (their rows are in other files now, or erased);
    the objects are deleted later, after the grace period of queries already running."""
    conn.execute(
        text(
            "UPDATE warm_files SET retired_at = now(), retired_reason = :why "
            "WHERE object_name = ANY(:names) AND retired_at IS NULL"
        ),
        {"names": list(names), "why": reason},
    )


def watermark(conn: Connection, table: str) -> int:
    """Where the warm tier of ``table`` ends: every row with a lower ``stored_seq`` is in a
    recorded file, and none with a higher one."""
    value = conn.execute(
        text(
            "SELECT coalesce(max(seq_hi), 0) FROM snapshot_runs "
            "WHERE table_name = :t AND state = 'done'"
        ),
        {"t": table},
    ).scalar_one()
    return int(value)


@contextlib.contextmanager
def table_lock(engine: Engine, table: str, wait_s: float = 0.0) -> Iterator[None]:
    """Hold the table's warm-tier lock (snapshots, compaction and erasure take it), or raise
    :class:`SnapshotAlreadyRunning` when another run still holds it after ``wait_s`` seconds."""
    key = {"k": f"telemetry-snapshot:{table}"}
    deadline = time.monotonic() + wait_s
    with engine.connect() as lock:
        while True:
            held = lock.execute(text("SELECT pg_try_advisory_lock(hashtext(:k))"), key).scalar()
            lock.commit()
            if held:
                break
            if time.monotonic() >= deadline:
                raise SnapshotAlreadyRunning(f"a snapshot of {table} is already running")
            time.sleep(min(1.0, max(deadline - time.monotonic(), 0.01)))
        try:
            yield
        finally:
            lock.execute(text("SELECT pg_advisory_unlock(hashtext(:k))"), key)
            lock.commit()


# Reading the catalog. Rows carry ``warm_files``' own column names (object_name, table_name,
# event_date, generation, rows, bytes, crc32c, event_id_digest, seq_lo, seq_hi, user_keys,
# user_key_index, retired_at, retired_reason).
_COLUMNS = (
    "object_name, table_name, event_date, generation, rows, bytes, crc32c, event_id_digest, "
    "seq_lo, seq_hi, user_keys, user_key_index, retired_at, retired_reason"
)


def live_files(conn: Connection, table: str | None = None, day: date | None = None) -> list[Any]:
    """The files reads see (recorded, not retired), of one table (or all) and one day (or all),
    by table, day and name."""
    return list(
        conn.execute(
            text(
                f"SELECT {_COLUMNS} FROM warm_files WHERE retired_at IS NULL "  # noqa: S608
                "AND (CAST(:t AS text) IS NULL OR table_name = CAST(:t AS text)) "
                "AND (CAST(:d AS date) IS NULL OR event_date = CAST(:d AS date)) "
                "ORDER BY table_name, event_date, object_name"
            ),
            {"t": table, "d": day},
        ).all()
    )


def retired_files(
    conn: Connection,
    table: str | None = None,
    before: datetime | None = None,
    holding_people: bool = False,
) -> list[Any]:
    """Retired files (of one table, retired before a time, or whose index names anyone)."""
    return list(
        conn.execute(
            text(
                f"SELECT {_COLUMNS} FROM warm_files WHERE retired_at IS NOT NULL "  # noqa: S608
                "AND (CAST(:t AS text) IS NULL OR table_name = CAST(:t AS text)) "
                "AND (CAST(:b AS timestamptz) IS NULL OR retired_at < CAST(:b AS timestamptz)) "
                "AND (NOT :h OR user_keys > 0) ORDER BY object_name"
            ),
            {"t": table, "b": before, "h": holding_people},
        ).all()
    )


def file(conn: Connection, name: str) -> Any:
    """One recorded file (retired or not); ``NoResultFound`` when none has that name."""
    return conn.execute(
        text(f"SELECT {_COLUMNS} FROM warm_files WHERE object_name = :n"),  # noqa: S608
        {"n": name},
    ).one()


def recorded_names(conn: Connection, table: str, day: date | None = None) -> set[str]:
    """Every object the catalog knows for a table (and day), retired or not."""
    return {
        row[0]
        for row in conn.execute(
            text(
                "SELECT object_name FROM warm_files WHERE table_name = :t "
                "AND (CAST(:d AS date) IS NULL OR event_date = CAST(:d AS date))"
            ),
            {"t": table, "d": day},
        )
    }


def days_before(conn: Connection, table: str, cutoff: date) -> list[Any]:
    """``(event_date, live files, live rows, bytes of all files)`` of each day before
    ``cutoff``: what retention would delete."""
    return list(
        conn.execute(
            text(
                "SELECT event_date, count(*) FILTER (WHERE retired_at IS NULL), "
                "coalesce(sum(rows) FILTER (WHERE retired_at IS NULL), 0), "
                "coalesce(sum(bytes), 0) FROM warm_files "
                "WHERE table_name = :t AND event_date < :c GROUP BY 1 ORDER BY 1"
            ),
            {"t": table, "c": cutoff},
        ).all()
    )


def forget_day(conn: Connection, table: str, day: date) -> None:
    """Remove a day's files from the catalog (retention, once their objects are deleted)."""
    conn.execute(
        text("DELETE FROM warm_files WHERE table_name = :t AND event_date = :d"),
        {"t": table, "d": day},
    )


def clear_index(conn: Connection, name: str, empty_index: bytes) -> None:
    """A file's erasure index names no one any more (its object is deleted)."""
    conn.execute(
        text("UPDATE warm_files SET user_keys = 0, user_key_index = :i WHERE object_name = :n"),
        {"i": empty_index, "n": name},
    )


def candidate_files(engine: Engine, user_keys: Iterable[str]) -> list[tuple[str, str]]:
    """``(table, object_name)`` of every live file whose erasure index may name any key."""
    keys = list(user_keys)
    with engine.connect() as conn:
        rows = live_files(conn)
    indexes = ((r.object_name, bytes(r.user_key_index)) for r in rows)
    named = set(files_that_may_hold(indexes, keys))
    return [(r.table_name, r.object_name) for r in rows if r.object_name in named]
