"""Cost reconciliation: past calls' ``cost_usd`` recomputed from their stored tokens under the
current price table, each at the price in force on its own day.

Prices change and tables get corrected; a dashboard that mixes price versions misleads. A
reprice reads the hot tier's calls since a day, recomputes each cost with the same
:meth:`PriceTable.cost` the decorator and OTLP ingest use, and updates only the rows whose cost
or price version differs, in one transaction. It reports the difference per provider and model;
a second run finds nothing to change. The warm tier's files keep the costs they were written
with (they are the record of what was known then).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, text

from shared.llm.pricing import TOKEN_KINDS, PriceTable, Usage
from shared.storage.hot.copy_format import copy_text
from shared.storage.hot.writer import copy_into

logger = logging.getLogger(__name__)
#: Rows read per round trip.
BATCH_ROWS = 10_000


@dataclass
class ModelDelta:
    """The change for one provider and model."""

    calls: int = 0
    changed: int = 0
    before_usd: Decimal = Decimal(0)
    after_usd: Decimal = Decimal(0)

    def to_json(self) -> dict[str, Any]:
        """The delta as JSON (amounts as strings: exact decimals)."""
        return {
            "calls": self.calls,
            "changed": self.changed,
            "before_usd": f"{self.before_usd:f}",
            "after_usd": f"{self.after_usd:f}",
            "difference_usd": f"{self.after_usd - self.before_usd:f}",
        }


@dataclass
class RepriceReport:
    """A reprice run, per provider and model."""

    price_version: str
    since: datetime
    dry_run: bool
    models: dict[tuple[str, str], ModelDelta] = field(default_factory=dict)

    @property
    def changed(self) -> int:
        """Calls whose cost or price version changed."""
        return sum(d.changed for d in self.models.values())

    def to_json(self) -> dict[str, Any]:
        """The report as JSON."""
        return {
            "price_version": self.price_version,
            "since": self.since.isoformat(),
            "dry_run": self.dry_run,
            "changed": self.changed,
            "models": [
                {"provider": p, "model": m, **d.to_json()}
                for (p, m), d in sorted(self.models.items())
            ],
        }


_COLUMNS = (
    "call_id",
    "ts",
    "provider",
    "model",
    *TOKEN_KINDS,
    "audio_seconds",
    "cost_usd",
    "price_version",
)


def _page(conn: Any, since: datetime, after: tuple[Any, Any] | None) -> list[Any]:
    """The next calls in (ts, call_id) order: keyset pages, so memory stays bounded."""
    where = "ts >= :since" + (" AND (ts, call_id) > (:ts, CAST(:id AS uuid))" if after else "")
    params: dict[str, Any] = {"since": since, "n": BATCH_ROWS}
    if after:
        params.update(ts=after[0], id=str(after[1]))
    return list(
        conn.execute(
            text(
                f"SELECT {', '.join(_COLUMNS)} FROM api_calls_log WHERE {where} "  # noqa: S608
                "ORDER BY ts, call_id LIMIT :n"
            ),
            params,
        ).all()
    )


def _recompute(
    prices: PriceTable, values: dict[str, Any], report: RepriceReport
) -> tuple[Any, ...] | None:
    """Count one call in the report; the update it needs, if any."""
    usage = Usage(
        **{kind: int(values[kind] or 0) for kind in TOKEN_KINDS},
        audio_seconds=float(values["audio_seconds"] or 0.0),
    )
    cost = prices.cost(values["provider"], values["model"], usage, values["ts"])
    delta = report.models.setdefault((values["provider"], values["model"]), ModelDelta())
    delta.calls += 1
    before = values["cost_usd"]
    delta.before_usd += before or 0
    delta.after_usd += cost.usd or 0
    if before == cost.usd and values["price_version"] == cost.price_version:
        return None
    delta.changed += 1
    return (values["call_id"], values["ts"], cost.usd, cost.price_version, cost.note)


def reprice(
    engine: Engine,
    prices: PriceTable,
    since: datetime,
    dry_run: bool = False,
    progress: Callable[[int], object] | None = None,
) -> RepriceReport:
    """Recompute the cost of every call since ``since``; update those that differ."""
    report = RepriceReport(prices.version, since, dry_run)
    updates: list[tuple[Any, ...]] = []
    seen = 0
    with engine.begin() as conn:
        after: tuple[Any, Any] | None = None
        while True:
            page = _page(conn, since, after)
            if not page:
                break
            after = (page[-1][1], page[-1][0])
            for row in page:
                values = dict(zip(_COLUMNS, row, strict=True))
                change = _recompute(prices, values, report)
                if change is not None:
                    updates.append(change)
            seen += len(page)
            if progress:
                progress(seen)
        if updates and not dry_run:
            conn.exec_driver_sql(
                "CREATE TEMPORARY TABLE reprice_costs (call_id uuid, ts timestamptz, "
                "cost_usd numeric(18, 8), price_version text, cost_note text) ON COMMIT DROP"
            )
            copy_into(
                conn,
                "reprice_costs",
                ("call_id", "ts", "cost_usd", "price_version", "cost_note"),
                copy_text(updates),
            )
            conn.exec_driver_sql(
                "UPDATE api_calls_log a SET cost_usd = r.cost_usd, "
                "price_version = r.price_version, cost_note = r.cost_note "
                "FROM reprice_costs r WHERE a.call_id = r.call_id AND a.ts = r.ts"
            )
    logger.info(
        "reprice",
        extra={
            "calls": seen,
            "changed": report.changed,
            "dry_run": dry_run,
            "price_version": prices.version,
        },
    )
    return report
