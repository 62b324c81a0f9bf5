"""The snapshot: new hot-tier rows into verified, typed Parquet files of the warm tier.

A run takes, per event table, the rows inserted since the last run, by ``stored_seq`` (the
inserting transaction's id), up to ``pg_snapshot_xmin`` of a fresh snapshot: every transaction
below it has finished, so no row can commit later into a range already read, however long its
transaction stayed open, and an event 48 hours late is simply new and lands in its own day.

Each (table, event day) of the range becomes one file, verified before it counts: its footer's
row count equals the rows PostgreSQL counted, the digest of its event ids equals the same digest
computed by PostgreSQL, and the stored object's CRC32C equals the file's (so the stored footer
and ids are these very bytes). Only then are the files recorded in
the warm catalog and the range marked done, in one transaction: that is the watermark moving.

Restartable at any point: the range is recorded as ``pending`` before anything is written, and a
rerun resumes that very range, so file names repeat and create-only uploads neither duplicate
nor lose a row. A second concurrent run of a table exits with "already running" (the table's
lock). The checks, the upload and the record are the warm catalog's
(:mod:`shared.storage.warm.catalog`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import Connection, Engine, text

from shared.contract.registry.loader import Registry
from shared.errors import (
    TerminalError,
)
from shared.settings import Settings
from shared.storage.failures import classify_failure
from shared.storage.hot.partitions import event_day_sql
from shared.storage.layout import EVENT_TABLES
from shared.storage.warm import catalog, export, objects
from shared.storage.warm.catalog import WarmFile, table_lock, watermark
from shared.storage.warm.columns import warm_columns
from shared.storage.warm.digest import hot_digest_sql

logger = logging.getLogger(__name__)

#: Called after each file with (table, rows written); the CLI's progress bar.
Progress = Callable[[str, int], object]


@dataclass
class TableRun:
    """What a run did (or, dry, would do) for one table."""

    table: str
    seq_lo: int
    seq_hi: int
    resumed: bool = False
    dry_run: bool = False
    planned: list[tuple[date, int]] = field(default_factory=list)
    files: list[WarmFile] = field(default_factory=list)

    @property
    def rows(self) -> int:
        """Rows written (or planned)."""
        if self.files:
            return sum(f.rows for f in self.files)
        return sum(rows for _, rows in self.planned)

    def to_json(self) -> dict[str, Any]:
        """The summary the function answers and the CLI prints."""
        return {
            "table": self.table,
            "range": [self.seq_lo, self.seq_hi],
            "resumed": self.resumed,
            "dry_run": self.dry_run,
            "rows": self.rows,
            "files": [
                {"object": f.object_name, "rows": f.rows, "bytes": f.size} for f in self.files
            ],
            "days": [{"day": d.isoformat(), "rows": r} for d, r in self.planned],
        }


class Snapshotter:
    """Runs snapshots of the event tables into the bucket."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        bucket: Any,
        registry: Registry,
        progress: Progress | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.bucket = bucket
        self.registry = registry
        self.progress = progress

    def run(self, tables: Iterable[str] | None = None, dry_run: bool = False) -> list[TableRun]:
        """Snapshot each table (all event tables by default)."""
        return [self.run_table(table, dry_run) for table in (tables or EVENT_TABLES)]

    def run_table(self, table: str, dry_run: bool = False) -> TableRun:
        """Snapshot one table; raises :class:`SnapshotAlreadyRunning` if another run holds it,
        :class:`ServiceUnavailable` when PostgreSQL or GCS does not answer (nothing recorded)."""
        if table not in EVENT_TABLES:
            raise TerminalError(f"unknown table {table!r}; expected one of {sorted(EVENT_TABLES)}")
        try:
            return self._run_table(table, dry_run)
        except Exception as exc:
            typed = classify_failure(exc)
            if typed is None:
                raise
            raise typed from exc

    def _run_table(self, table: str, dry_run: bool) -> TableRun:
        with table_lock(self.engine, table):
            return self._run_locked(table, dry_run)

    def _run_locked(self, table: str, dry_run: bool) -> TableRun:
        with self.engine.begin() as conn:
            run = self._range(conn, table, dry_run)
            if run.seq_hi <= run.seq_lo:
                return run
            planned = self._plan(conn, table, run.seq_lo, run.seq_hi)
        run.planned = planned
        logger.info(
            "snapshot planned",
            extra={
                "table": table,
                "seq_lo": run.seq_lo,
                "seq_hi": run.seq_hi,
                "days": len(planned),
                "rows": run.rows,
                "resumed": run.resumed,
                "dry_run": dry_run,
            },
        )
        if dry_run or not planned:
            if not dry_run:
                self._record(table, run, [])
            return run
        columns = warm_columns(table, self.registry)
        # PostgreSQL digests the range while DuckDB exports it: two cores, one wait.
        with (
            export.workspace(self.settings) as space,
            ThreadPoolExecutor(1, thread_name_prefix="snapshot-digest") as pool,
        ):
            digests = pool.submit(self._digests, table, run.seq_lo, run.seq_hi)
            for day, planned_rows in planned:
                rows = planned_rows
                piece = export.DaySlice(table, day, run.seq_lo, run.seq_hi)
                # A file that failed a check is deleted: count, digest and write it again.
                # The range itself can shrink meanwhile: an erasure that began leaves its
                # people's rows out (range_where), so the counts are taken again too.
                for attempt in (1, 2, 3):
                    if not rows:
                        break
                    try:
                        run.files.append(self._write(space, piece, columns, rows, digests))
                        break
                    except objects.VerificationFailed as exc:
                        if attempt == 3:
                            raise
                        logger.warning("warm file failed a check", extra={"error": exc.message})
                        digests = pool.submit(self._digests, table, run.seq_lo, run.seq_hi)
                        rows = digests.result().get(day, (0, "0"))[0]
                if self.progress is not None:
                    self.progress(table, rows)
        self._record(table, run, run.files)
        logger.info(
            "snapshot done",
            extra={"table": table, "files": len(run.files), "rows": run.rows},
        )
        return run

    def _range(self, conn: Connection, table: str, dry_run: bool) -> TableRun:
        """The pending range of an interrupted run, or a new one up to every finished insert."""
        pending = conn.execute(
            text(
                "SELECT seq_lo, seq_hi FROM snapshot_runs "
                "WHERE table_name = :t AND state = 'pending'"
            ),
            {"t": table},
        ).first()
        if pending is not None:
            return TableRun(table, int(pending[0]), int(pending[1]), resumed=True, dry_run=dry_run)
        lo = watermark(conn, table)
        hi = conn.execute(
            text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
        ).scalar_one()
        run = TableRun(table, int(lo), max(int(hi), int(lo)), dry_run=dry_run)
        if not dry_run and run.seq_hi > run.seq_lo:
            conn.execute(
                text(
                    "INSERT INTO snapshot_runs (table_name, seq_lo, seq_hi, state) "
                    "VALUES (:t, :lo, :hi, 'pending')"
                ),
                {"t": table, "lo": run.seq_lo, "hi": run.seq_hi},
            )
        return run

    @staticmethod
    def _plan(conn: Connection, table: str, lo: int, hi: int) -> list[tuple[date, int]]:
        """``(day, rows)`` of each event day in the range."""
        day = event_day_sql(table)
        where = export.range_where(table, lo, hi)
        rows = conn.execute(
            text(f"SELECT {day}, count(*) FROM {table} WHERE {where} GROUP BY 1 ORDER BY 1")  # noqa: S608
        ).all()
        return [(r[0], int(r[1])) for r in rows]

    def _digests(self, table: str, lo: int, hi: int) -> dict[date, tuple[int, str]]:
        """``{day: (rows, digest)}`` of the range, computed by PostgreSQL."""
        day = event_day_sql(table)
        where = export.range_where(table, lo, hi)
        with self.engine.connect() as conn:
            rows = conn.execute(text(hot_digest_sql(table, where, group_by=day))).all()
        return {r[0]: (int(r[1]), str(r[2])) for r in rows}

    def _write(
        self,
        space: export.Workspace,
        piece: export.DaySlice,
        columns: list[Any],
        rows: int,
        digests: Future[dict[date, tuple[int, str]]],
    ) -> WarmFile:
        """Export, check against PostgreSQL, upload create-only, check the stored object."""
        name = objects.object_name(piece)
        con, path = space.con, space.local_path(name)
        try:
            export.export_slice(con, piece, columns, path)
            expected = digests.result().get(piece.day, (0, "0"))
            if expected[0] != rows:
                raise objects.VerificationFailed(
                    f"{name}: PostgreSQL now counts {expected[0]} rows, {rows} were planned; "
                    "rows changed while exporting, run again"
                )
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        placed = (piece.table, piece.day, piece.seq_lo, piece.seq_hi)
        written = catalog.write_verified(
            con, self.bucket, path, name, expected, placed, "rows changed while exporting"
        )
        logger.info(
            "snapshot progress",
            extra={"table": piece.table, "day": piece.day.isoformat(), "rows": rows},
        )
        return written

    def _record(self, table: str, run: TableRun, files: list[WarmFile]) -> None:
        """Record the verified files and mark the range done: the watermark moves, atomically."""
        with self.engine.begin() as conn:
            for f in files:
                catalog.record(conn, f)
            conn.execute(
                text(
                    "UPDATE snapshot_runs SET state = 'done', finished_at = now(), rows = :r, "
                    "files = :f WHERE table_name = :t AND seq_lo = :lo AND state = 'pending'"
                ),
                {"r": sum(f.rows for f in files), "f": len(files), "t": table, "lo": run.seq_lo},
            )
