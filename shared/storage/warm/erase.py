"""Erasing people from the warm tier: only the files that hold them are rewritten.

Under the table's warm-tier lock (so no snapshot or compaction runs meanwhile), per table:

1. objects in the bucket that the warm catalog does not know are deleted: only a crashed snapshot
   or compaction leaves them, and both write them again from their sources when they resume;
2. retired files (compaction inputs in their grace period) whose index may hold the people are
   deleted at once, their rows live on in the file that replaced them;
3. the files whose index may hold the people are opened (a Bloom filter never misses, and
   names a file that does not hold them with a small probability); a file that holds them is
   rewritten without them, and the new file is checked (its footer holds the old rows minus the
   removed ones, its event-id digest the old digest minus theirs, its pseudonyms none of theirs,
   the stored CRC32C the file's) before, in one transaction, it is recorded, the old file retired
   and its counts added to the request's receipt. The old object is deleted right after.

:func:`remaining` is the tier's check afterwards: every Parquet object in the bucket, recorded
or not, is read for the people's rows.

Restartable at any point: a file already rewritten is no longer named by any index, a new file
uploaded but not recorded has a name fixed by (old file, request) and is written again.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Engine

from shared.settings import Settings
from shared.storage import gcs
from shared.storage.layout import EVENT_TABLES, WARM_PREFIX, warm_partition_prefix
from shared.storage.receipt import ErasureReceipt
from shared.storage.warm import catalog, export
from shared.storage.warm.catalog import table_lock
from shared.storage.warm.columns import SORT_COLUMNS
from shared.storage.warm.digest import file_digest, subtract_digest
from shared.storage.warm.erasure_index import build_index, files_that_may_hold
from shared.storage.warm.query import gcs_filesystem

logger = logging.getLogger(__name__)

#: How long an erasure waits for a running snapshot or compaction of the table.
LOCK_WAIT_S = 900.0
_EMPTY_INDEX = build_index([])


@dataclass
class WarmCounts:
    """What the warm step did to one table."""

    files_opened: int = 0
    files_holding: int = 0
    files_rewritten: int = 0
    false_positives: int = 0
    rows_removed: int = 0
    retired_files_deleted: int = 0
    orphans_deleted: int = 0

    def to_json(self) -> dict[str, int]:
        """The receipt's form."""
        return asdict(self)


def erased_name(table: str, day: Any, old_name: str, request_id: str) -> str:
    """The rewritten file's name, fixed by (old file, request): a rerun writes the same name."""
    digest = hashlib.sha256(f"{old_name}\n{request_id}".encode()).hexdigest()[:16]
    return f"{warm_partition_prefix(table, day)}{table}-{day:%Y%m%d}-erased-{digest}.parquet"


def keys_sql(user_keys: Sequence[str]) -> str:
    """A DuckDB list literal of pseudonyms (hex strings, quoted all the same)."""
    return "[" + ", ".join(export.sql_string(k) for k in user_keys) + "]"


def erase_table(
    settings: Settings,
    engine: Engine,
    bucket: Any,
    table: str,
    user_keys: Sequence[str],
    receipt: ErasureReceipt,
    opened: Callable[[str], object] | None = None,
) -> WarmCounts:
    """Remove every row of ``user_keys`` from ``table``'s warm files (``opened`` is told of
    each file opened: progress)."""
    counts = WarmCounts()
    with table_lock(engine, table, wait_s=LOCK_WAIT_S):
        counts.orphans_deleted = _delete_orphans(engine, bucket, table)
        counts.retired_files_deleted = _delete_retired_holding(engine, bucket, table, user_keys)
        with engine.connect() as conn:
            rows = catalog.live_files(conn, table)
        named = files_that_may_hold(
            ((r.object_name, bytes(r.user_key_index)) for r in rows), user_keys
        )
        if named:
            with export.workspace(settings, attach_hot=False) as space:
                space.con.register_filesystem(gcs_filesystem(settings))
                for name in named:
                    if opened is not None:
                        opened(name)
                    _erase_file(
                        settings,
                        engine,
                        bucket,
                        space,
                        table,
                        name,
                        user_keys,
                        receipt,
                        counts,
                    )
    if counts.orphans_deleted or counts.retired_files_deleted:
        with engine.begin() as conn:
            receipt.add(
                conn,
                "warm",
                {
                    "orphans_deleted": counts.orphans_deleted,
                    "retired_files_deleted": counts.retired_files_deleted,
                },
            )
    logger.info("erasure warm step", extra={"table": table, **counts.to_json()})
    return counts


def _delete_orphans(engine: Engine, bucket: Any, table: str) -> int:
    """Delete the table's objects the warm catalog does not record (left by a crashed run)."""
    prefix = f"{WARM_PREFIX}{table}/"
    with engine.connect() as conn:
        known = catalog.recorded_names(conn, table)
    deleted = 0
    for blob in bucket.list_blobs(prefix=prefix, retry=gcs.GCS_RETRY):
        if blob.name not in known:
            gcs.purge(bucket, blob.name)
            deleted += 1
    return deleted


def _delete_retired_holding(
    engine: Engine, bucket: Any, table: str, user_keys: Sequence[str]
) -> int:
    """Delete retired files that may hold the people (their rows are in the files that replaced
    them), and clear their index; the number of objects deleted."""
    with engine.connect() as conn:
        rows = catalog.retired_files(conn, table, holding_people=True)
    deleted = 0
    indexes = ((r.object_name, bytes(r.user_key_index)) for r in rows)
    for name in files_that_may_hold(indexes, user_keys):
        deleted += 1 if gcs.purge(bucket, name) else 0
        _clear_index(engine, name)
    return deleted


def _clear_index(engine: Engine, name: str) -> None:
    with engine.begin() as conn:
        catalog.clear_index(conn, name, _EMPTY_INDEX)


def _erase_file(
    settings: Settings,
    engine: Engine,
    bucket: Any,
    space: export.Workspace,
    table: str,
    name: str,
    user_keys: Sequence[str],
    receipt: ErasureReceipt,
    counts: WarmCounts,
) -> None:
    """Open one named file; rewrite it without the people if it holds them."""
    con = space.con
    with engine.connect() as conn:
        old = catalog.file(conn, name)
    source = f"gs://{settings.telemetry_bucket}/{name}"
    listed = keys_sql(user_keys)
    held, held_digest = file_digest(con, table, [source], f"list_contains({listed}, user_key)")
    counts.files_opened += 1
    if held == 0:
        counts.false_positives += 1
        with engine.begin() as conn:
            receipt.add(conn, "warm", {"files_opened": 1, "false_positives": 1})
        return
    counts.files_holding += 1
    kept_rows = int(old.rows) - held
    kept_digest = subtract_digest(old.event_id_digest, held_digest)
    new_name = erased_name(table, old.event_date, name, receipt.request_id)
    rewritten = None
    if kept_rows:
        path = space.local_path(new_name)
        keep = f"user_key IS NULL OR NOT list_contains({listed}, user_key)"
        try:
            con.execute(
                f"COPY (SELECT * FROM read_parquet({export.sql_string(source)}) WHERE {keep} "  # noqa: S608
                f"ORDER BY {', '.join(SORT_COLUMNS[table])}) TO {export.sql_string(str(path))} "
                f"(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {export.ROW_GROUP_ROWS})"
            )
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        placed = (table, old.event_date, int(old.seq_lo), int(old.seq_hi))
        rewritten = catalog.write_verified(
            con,
            bucket,
            path,
            new_name,
            (kept_rows, kept_digest),
            placed,
            "the old file is kept",
            absent_keys=user_keys,
        )
    with engine.begin() as conn:
        if rewritten is not None:
            catalog.record(conn, rewritten)
        catalog.retire(conn, [name], "erasure")
        receipt.add(
            conn,
            "warm",
            {"files_opened": 1, "files_holding": 1, "files_rewritten": 1, "rows_removed": held},
        )
    counts.files_rewritten += 1
    counts.rows_removed += held
    gcs.purge(bucket, name)
    _clear_index(engine, name)


def remaining(settings: Settings, bucket: Any, user_keys: Sequence[str]) -> dict[str, int]:
    """Rows of ``user_keys`` in every Parquet object of the bucket, recorded or not, per table
    (all zero once they are erased)."""
    found = {}
    with export.workspace(settings, attach_hot=False) as space:
        con = space.con
        con.register_filesystem(gcs_filesystem(settings))
        for table in EVENT_TABLES:
            names = [
                f"gs://{settings.telemetry_bucket}/{b.name}"
                for b in bucket.list_blobs(prefix=f"{WARM_PREFIX}{table}/", retry=gcs.GCS_RETRY)
                if b.name.endswith(".parquet")
            ]
            rows = 0
            if names:
                listing = "[" + ", ".join(export.sql_string(n) for n in names) + "]"
                rows = int(
                    con.execute(
                        f"SELECT count(*) FROM read_parquet({listing}, union_by_name = true) "  # noqa: S608
                        f"WHERE list_contains({keys_sql(user_keys)}, user_key)"
                    ).fetchone()[0]
                )
            found[f"warm.{table}"] = rows
    return found
