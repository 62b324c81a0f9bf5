"""Retention on every tier, daily: each tier kept within its days, nothing lost on the way.

* **Partitions.** Rows that fell into a table's DEFAULT partition get their day's partition,
  and partitions are created :data:`HOT_PARTITIONS_AHEAD_DAYS` ahead.
* **Hot.** A day partition older than :data:`HOT_RETENTION_DAYS` is dropped only when the warm
  tier holds every one of its rows in verified files: none of its rows is past the snapshot's
  watermark, and the day's recorded files hold the same rows (count and event-id digest, the
  snapshot's reconciliation; failing that, every event id is looked up in the files). Otherwise
  it is kept, and the reason logged and alerted.
* **Warm.** Files of days older than :data:`WARM_RETENTION_DAYS` are deleted.
* **Cold.** Archives past their expiry (:data:`COLD_RETENTION_DAYS`) are deleted. The bucket's
  own rule moves them to the Archive class after a year.

Every action is appended to the audit log in the transaction that records it. Every step is
idempotent and checks the current state before acting, so a rerun after a crash finishes the
work, and ``dry_run`` reports what would go, with sizes, and changes nothing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, text

from shared.observability.alerts import AlertSend
from shared.policy.retention import HOT_RETENTION_DAYS, WARM_RETENTION_DAYS
from shared.settings import Settings
from shared.storage import audit
from shared.storage.cold.archive import iter_manifests, manifest_object_name
from shared.storage.gcs import purge
from shared.storage.hot.partitions import ensure_partition, list_partitions, partition_name
from shared.storage.layout import EVENT_TABLES, HOT_PARTITIONS_AHEAD_DAYS
from shared.storage.warm import catalog, export
from shared.storage.warm.catalog import table_lock, watermark
from shared.storage.warm.columns import ID_COLUMNS, event_day_sql
from shared.storage.warm.reconcile import reconcile

logger = logging.getLogger(__name__)

_PARTITION_DAY = re.compile(r"_p(\d{8})$")
#: How long retention waits for a running snapshot or compaction of a table.
LOCK_WAIT_S = 900.0

#: Called with each item as it is decided (the CLI prints it).
Progress = Callable[["RetentionItem"], object]


@dataclass(frozen=True)
class RetentionItem:
    """One thing retention removed, kept, or created (or would, dry)."""

    tier: str
    subject: str
    action: str
    reason: str
    rows: int = 0
    bytes: int = 0
    verified_by: str = ""

    def to_json(self) -> dict[str, Any]:
        """The function's answer and the CLI's JSON."""
        return asdict(self)


@dataclass
class RetentionReport:
    """A run's items."""

    today: date
    dry_run: bool
    items: list[RetentionItem] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The function's answer."""
        return {
            "today": self.today.isoformat(),
            "dry_run": self.dry_run,
            "items": [i.to_json() for i in self.items],
            "kept": sum(1 for i in self.items if i.action == "keep"),
        }


class Retention:
    """Applies the retention of every tier."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        bucket: Any,
        alert: AlertSend | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.bucket = bucket
        self.alert = alert
        self.progress = progress

    def run(self, now: datetime | None = None, dry_run: bool = False) -> RetentionReport:
        """One retention pass at ``now`` (the clock, unless a test freezes it)."""
        now = now or datetime.now(UTC)
        report = RetentionReport(now.date(), dry_run)
        self._partitions(report)
        self._hot(report)
        self._warm(report)
        self._cold(report, now)
        logger.info(
            "retention done",
            extra={
                "dry_run": dry_run,
                "items": len(report.items),
                "kept": sum(1 for i in report.items if i.action == "keep"),
            },
        )
        return report

    def _add(self, report: RetentionReport, item: RetentionItem) -> None:
        report.items.append(item)
        logger.info(
            "retention item",
            extra={
                "tier": item.tier,
                "subject": item.subject,
                "action": item.action,
                "rows": item.rows,
                "bytes": item.bytes,
                "dry_run": report.dry_run,
            },
        )
        if self.progress is not None:
            self.progress(item)

    # -- partitions ------------------------------------------------------------------------
    def _partitions(self, report: RetentionReport) -> None:
        today = report.today
        with self.engine.begin() as conn:
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
                    if not report.dry_run:
                        ensure_partition(conn, table, day)
                    reason = f"{rows} rows waited in {table}_default" if rows else "created ahead"
                    self._add(report, RetentionItem("hot", name, "create", reason, rows))

    # -- hot -------------------------------------------------------------------------------
    def _hot(self, report: RetentionReport) -> None:
        cutoff = report.today - timedelta(days=HOT_RETENTION_DAYS)
        for table in EVENT_TABLES:
            with self.engine.connect() as conn:
                names = list_partitions(conn, table)
            for name in names:
                match = _PARTITION_DAY.search(name)
                if match is None:
                    continue
                day = datetime.strptime(match.group(1), "%Y%m%d").date()
                if day < cutoff:
                    self._drop_if_held(report, table, name, day)

    def _drop_if_held(self, report: RetentionReport, table: str, name: str, day: date) -> None:
        with self.engine.connect() as conn:
            rows, unsnapshotted, size = self._partition_state(conn, table, name)
        if unsnapshotted:
            held, verified_by = False, ""
            problem = f"{unsnapshotted} of its {rows} rows are not in the warm tier yet"
        elif not rows:
            held, verified_by, problem = True, "empty", ""
        else:
            held, verified_by, problem = self._warm_holds(table, name, day, rows)
        if not held:
            item = RetentionItem("hot", name, "keep", problem, rows, size)
            self._add(report, item)
            self._alert(item)
            return
        item = RetentionItem(
            "hot", name, "drop", f"older than {HOT_RETENTION_DAYS} days", rows, size, verified_by
        )
        if report.dry_run:
            self._add(report, item)
            return
        with self.engine.begin() as conn:
            # The parent first, as writers lock it: no deadlock. Under the lock, the partition
            # must still be what was verified: the same rows, none past the watermark.
            conn.execute(text("SET LOCAL lock_timeout = '30s'"))
            conn.execute(text(f'LOCK TABLE "{table}" IN ACCESS EXCLUSIVE MODE'))
            now_rows, now_unsnapshotted, _ = self._partition_state(conn, table, name)
            if (now_rows, now_unsnapshotted) != (rows, 0):  # nothing changed: the commit unlocks
                item = RetentionItem("hot", name, "keep", "rows arrived while it was checked")
                self._add(report, item)
                return
            conn.execute(text(f'ALTER TABLE "{table}" DETACH PARTITION "{name}"'))
            conn.execute(text(f'DROP TABLE "{name}"'))
            audit.append(
                conn,
                "retention.hot.drop",
                name,
                item.reason,
                verified_by,
                {"day": day.isoformat(), "rows": item.rows, "bytes": item.bytes},
            )
        self._add(report, item)

    @staticmethod
    def _partition_state(conn: Connection, table: str, name: str) -> tuple[int, int, int]:
        """``(rows, rows past the warm watermark, bytes)`` of a partition."""
        rows, past, size = conn.execute(
            text(
                f"SELECT count(*), count(*) FILTER (WHERE stored_seq >= :w), "  # noqa: S608
                f'pg_total_relation_size(\'"{name}"\') FROM "{name}"'
            ),
            {"w": watermark(conn, table)},
        ).one()
        return int(rows), int(past), int(size)

    def _warm_holds(self, table: str, name: str, day: date, rows: int) -> tuple[bool, str, str]:
        """Whether the warm tier holds every row of the partition: ``(held, how, problem)``."""
        checks, mismatches = reconcile(self.engine, self.bucket, day, today=day, tables=[table])
        check = next((c for c in checks if c.table == table), None)
        mine = [m for m in mismatches if m.table == table]
        if check is not None and not mine and check.hot_rows == rows:
            return (
                True,
                f"reconciled: {check.files} recorded warm files hold its {rows} rows "
                "(count and event-id digest equal, objects present)",
                "",
            )
        if any("missing" in m.problem for m in mine):
            return False, "", "; ".join(str(m) for m in mine)
        missing = self._ids_missing_from_warm(table, name, day)
        if missing == 0:
            return True, f"every one of its {rows} event ids found in the day's warm files", ""
        return False, "", f"{missing} of its {rows} rows are not in the day's warm files"

    def _ids_missing_from_warm(self, table: str, name: str, day: date) -> int:
        """Event ids of the partition that no recorded warm file of the day holds."""
        from shared.storage.warm.query import gcs_filesystem

        with self.engine.connect() as conn:
            files = [
                f"gs://{self.settings.telemetry_bucket}/{r[0]}"
                for r in catalog.live_files(conn, table, day)
            ]
        column = ID_COLUMNS[table]
        hot = export.sql_string(f'SELECT {column}::text AS id FROM "{name}"')  # noqa: S608
        with export.workspace(self.settings) as space:
            con = space.con
            con.register_filesystem(gcs_filesystem(self.settings))
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

    def _alert(self, item: RetentionItem) -> None:
        logger.warning(
            "hot partition kept past its retention",
            extra={"partition": item.subject, "reason": item.reason, "rows": item.rows},
        )
        if self.alert is None:
            return
        try:
            self.alert(
                "retention.partition_kept",
                "warning",
                f"{item.subject} is past its {HOT_RETENTION_DAYS}-day retention but kept: "
                f"{item.reason}",
                {"partition": item.subject, "rows": item.rows, "bytes": item.bytes},
            )
        except Exception as exc:  # the log line above stands; the next run alerts again
            logger.warning("alert not published", extra={"error_type": type(exc).__name__})

    # -- warm ------------------------------------------------------------------------------
    def _warm(self, report: RetentionReport) -> None:
        cutoff = report.today - timedelta(days=WARM_RETENTION_DAYS)
        for table in EVENT_TABLES:
            with self.engine.connect() as conn:
                days = catalog.days_before(conn, table, cutoff)
            if not days:
                continue
            if report.dry_run:
                for day, files, rows, size in days:
                    self._add(report, self._warm_item(table, day, files, rows, size))
                continue
            with table_lock(self.engine, table, wait_s=LOCK_WAIT_S):
                for day, files, rows, size in days:
                    self._delete_warm_day(
                        report, table, day, self._warm_item(table, day, files, rows, size)
                    )

    @staticmethod
    def _warm_item(table: str, day: date, files: int, rows: int, size: int) -> RetentionItem:
        return RetentionItem(
            "warm",
            f"{table} {day.isoformat()} ({files} files)",
            "delete",
            f"older than {WARM_RETENTION_DAYS} days",
            int(rows),
            int(size),
            "the age of the day",
        )

    def _delete_warm_day(
        self, report: RetentionReport, table: str, day: date, item: RetentionItem
    ) -> None:
        with self.engine.connect() as conn:
            names = sorted(catalog.recorded_names(conn, table, day))
        for name in names:
            purge(self.bucket, name)
        with self.engine.begin() as conn:
            catalog.forget_day(conn, table, day)
            audit.append(
                conn,
                "retention.warm.delete",
                f"{table} {day.isoformat()}",
                item.reason,
                item.verified_by,
                {"files": len(names), "rows": item.rows, "bytes": item.bytes},
            )
        self._add(report, item)

    # -- cold ------------------------------------------------------------------------------
    def _cold(self, report: RetentionReport, now: datetime) -> None:
        for manifest in iter_manifests(self.engine, "expires_at < :now", {"now": now}):
            item = RetentionItem(
                "cold",
                f"conversation archive {manifest_object_name(manifest.conversation_id)}",
                "delete",
                "past its 2-year retention",
                0,
                manifest.bytes,
                f"expired {manifest.expires_at.date().isoformat()}",
            )
            if report.dry_run:
                self._add(report, item)
                continue
            for name in sorted({o.object for o in manifest.objects}):
                purge(self.bucket, name)
            purge(self.bucket, manifest_object_name(manifest.conversation_id))
            with self.engine.begin() as conn:
                conn.execute(
                    text("DELETE FROM storage_manifests WHERE conversation_id = :c"),
                    {"c": manifest.conversation_id},
                )
                audit.append(
                    conn,
                    "retention.cold.delete",
                    item.subject,
                    item.reason,
                    item.verified_by,
                    {"objects": len(manifest.objects), "bytes": manifest.bytes},
                )
            self._add(report, item)
