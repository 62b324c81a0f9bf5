"""Retention on every tier, daily: each tier kept within its days, nothing lost on the way.

A short composition of each tier's own expire operations, in order:

1. **partitions** (``hot/expire.py``): stray rows of a table's DEFAULT partition get their
   day's partition, and partitions are created ahead;
2. **hot**: a day partition older than :data:`HOT_RETENTION_DAYS` is dropped only when the warm
   tier holds every one of its rows (``warm/expire.py``'s :func:`holds`): none of its rows is
   past the snapshot's watermark, and the day's recorded files hold the same rows. Otherwise it
   is kept, and the reason logged and alerted;
3. **warm** (``warm/expire.py``): files of days older than the warm retention are deleted;
4. **cold** (``cold/expire.py``): archives past their expiry are deleted.

Every action is appended to the audit log in the transaction that records it. Every step is
idempotent and checks the current state before acting, so a rerun after a crash finishes the
work, and ``dry_run`` reports what would go, with sizes, and changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from shared.observability.alerts import AlertSend
from shared.policy.retention import HOT_RETENTION_DAYS
from shared.settings import Settings
from shared.storage.cold import expire as cold
from shared.storage.hot import expire as hot
from shared.storage.layout import EVENT_TABLES
from shared.storage.retention_item import RetentionItem
from shared.storage.warm import expire as warm
from shared.storage.warm.catalog import watermark

logger = logging.getLogger(__name__)

#: Called with each item as it is decided (the CLI prints it).
Progress = Callable[[RetentionItem], object]


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
        self._add(report, hot.create_ahead(self.engine, report.today, dry_run))
        self._add(report, self._hot(report.today, dry_run))
        self._add(report, warm.expire(self.engine, self.bucket, report.today, dry_run))
        self._add(report, cold.expire(self.engine, self.bucket, now, dry_run))
        logger.info(
            "retention done",
            extra={
                "dry_run": dry_run,
                "items": len(report.items),
                "kept": sum(1 for i in report.items if i.action == "keep"),
            },
        )
        return report

    def _add(self, report: RetentionReport, items: Iterable[RetentionItem]) -> None:
        for item in items:
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

    def _hot(self, today: date, dry_run: bool) -> Iterable[RetentionItem]:
        """Old hot partitions: dropped when the warm tier holds them, else kept and alerted."""
        cutoff = today - timedelta(days=HOT_RETENTION_DAYS)
        for table in EVENT_TABLES:
            with self.engine.connect() as conn:
                mark = watermark(conn, table)
            for part in hot.partitions_before(self.engine, table, cutoff, mark):
                holding = self._warm_holds(part)
                if not holding.held:
                    item = RetentionItem(
                        "hot", part.name, "keep", holding.problem, part.rows, part.bytes
                    )
                    self._alert(item)
                    yield item
                    continue
                reason = f"older than {HOT_RETENTION_DAYS} days"
                item = RetentionItem(
                    "hot", part.name, "drop", reason, part.rows, part.bytes, holding.verified_by
                )
                if dry_run or hot.drop(self.engine, part, mark, item):
                    yield item
                else:
                    yield RetentionItem(
                        "hot", part.name, "keep", "rows arrived while it was checked"
                    )

    def _warm_holds(self, part: hot.Partition) -> warm.Holding:
        if part.unsnapshotted:
            waiting = f"{part.unsnapshotted} of its {part.rows} rows are not in the warm tier yet"
            return warm.Holding(False, problem=waiting)
        if not part.rows:
            return warm.Holding(True, "empty")
        return warm.holds(
            self.settings, self.engine, self.bucket, part.table, part.name, part.day, part.rows
        )

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
