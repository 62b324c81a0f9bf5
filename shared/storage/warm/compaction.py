"""Compaction: the small files of a table-day merged into files of 64 to 256 MB, verified.

Snapshots every few minutes leave many small files per day. Compaction merges the recorded,
unretired files of a day (in bins of at most :data:`TARGET_BYTES` of input), checks the merged
file exactly as a snapshot checks its own (the footer holds the inputs' rows, the event ids
the sum of their digests, the stored CRC32C the file's), and then, in one transaction, records
it and retires its inputs. Queries list files in one snapshot of the warm catalog: they read
either the inputs or the merged file, never both, so no row is seen twice or missed. Retired
objects are deleted only after :data:`RETIRED_GRACE` (a query that listed them can still read
them), by :func:`delete_retired`. It takes the table's snapshot lock: a snapshot and a
compaction of one table never run at once. Restartable: the merged file's name is fixed by its
inputs, so a rerun writes the same name, and nothing is retired before its copy is recorded.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from shared.settings import Settings
from shared.storage import gcs
from shared.storage.layout import warm_partition_prefix
from shared.storage.warm import catalog, export
from shared.storage.warm.catalog import table_lock
from shared.storage.warm.columns import SORT_COLUMNS
from shared.storage.warm.digest import add_digests

logger = logging.getLogger(__name__)

#: At most this much input is merged into one file (the aim is 64 to 256 MB per file).
TARGET_BYTES = 256 * 1024 * 1024
#: Retired files stay this long for queries that listed them before they were retired.
RETIRED_GRACE = timedelta(hours=1)


@dataclass(frozen=True)
class Merge:
    """One merged file and what it replaced."""

    table: str
    day: date
    object_name: str
    inputs: list[str]
    rows: int
    bytes: int


def _bins(files: list[Any]) -> list[list[Any]]:
    """Consecutive groups of files of at most TARGET_BYTES each (single files stay)."""
    bins: list[list[Any]] = [[]]
    size = 0
    for f in files:
        if bins[-1] and size + int(f.bytes) > TARGET_BYTES:
            bins.append([])
            size = 0
        bins[-1].append(f)
        size += int(f.bytes)
    return [b for b in bins if len(b) > 1]


def merged_name(table: str, day: date, inputs: list[str]) -> str:
    """The merged file's name, fixed by its inputs (a rerun writes the same name)."""
    digest = hashlib.sha256("\n".join(sorted(inputs)).encode()).hexdigest()[:16]
    return f"{warm_partition_prefix(table, day)}{table}-{day:%Y%m%d}-compact-{digest}.parquet"


def compact(
    settings: Settings, engine: Engine, bucket: Any, table: str, day: date | None = None
) -> list[Merge]:
    """Merge the small files of each day of ``table`` (or of one day)."""
    merges: list[Merge] = []
    with table_lock(engine, table):
        with engine.connect() as conn:
            files = catalog.live_files(conn, table, day)
        by_day: dict[date, list[Any]] = {}
        for f in files:
            by_day.setdefault(f.event_date, []).append(f)
        if not any(_bins(day_files) for day_files in by_day.values()):
            return merges
        with export.workspace(settings) as space:
            space.con.register_filesystem(_filesystem(settings))
            for each, day_files in sorted(by_day.items()):
                for group in _bins(day_files):
                    merges.append(_merge(settings, engine, bucket, space, table, each, group))
    return merges


def _filesystem(settings: Settings) -> Any:
    from shared.storage.warm.query import gcs_filesystem

    return gcs_filesystem(settings)


def _merge(
    settings: Settings,
    engine: Engine,
    bucket: Any,
    space: export.Workspace,
    table: str,
    day: date,
    group: list[Any],
) -> Merge:
    inputs = [f.object_name for f in group]
    name = merged_name(table, day, inputs)
    rows = sum(int(f.rows) for f in group)
    digest = add_digests(f.event_id_digest for f in group)
    con, path = space.con, space.local_path(name)
    sources = (
        "["
        + ", ".join(export.sql_string(f"gs://{settings.telemetry_bucket}/{n}") for n in inputs)
        + "]"
    )
    order = ", ".join(SORT_COLUMNS[table])
    try:
        con.execute(
            f"COPY (SELECT * FROM read_parquet({sources}, union_by_name = true) "  # noqa: S608
            f"ORDER BY {order}) TO {export.sql_string(str(path))} "
            f"(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {export.ROW_GROUP_ROWS})"
        )
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    placed = (table, day, min(int(f.seq_lo) for f in group), max(int(f.seq_hi) for f in group))
    merged = catalog.write_verified(
        con, bucket, path, name, (rows, digest), placed, "nothing retired"
    )
    with engine.begin() as conn:
        catalog.record(conn, merged)
        catalog.retire(conn, inputs)
    logger.info(
        "compaction merged",
        extra={"table": table, "day": day.isoformat(), "inputs": len(inputs), "rows": rows},
    )
    return Merge(table, day, name, inputs, rows, merged.size)


def delete_retired(
    engine: Engine, bucket: Any, now: datetime | None = None, grace: timedelta = RETIRED_GRACE
) -> int:
    """Delete the objects of files retired longer ago than ``grace``; the count deleted.

    Their rows live on in the merged file that replaced them (recorded before they were
    retired), so deleting them loses nothing; the catalog's record stays as the audit trail.
    """
    now = now or datetime.now(UTC)
    with engine.connect() as conn:
        retired = catalog.retired_files(conn, before=now - grace)
    deleted = 0
    for name, generation in ((r.object_name, r.generation) for r in retired):
        blob = bucket.get_blob(name, retry=gcs.GCS_RETRY)
        if blob is not None and int(blob.generation) == int(generation):
            blob.delete(if_generation_match=generation, retry=gcs.GCS_RETRY)
            deleted += 1
    return deleted
