"""``telemetry otlp report``: per instrumentation, what ingest made of its OTLP exports.

Read from the ``pipeline.otlp`` events ingest stores each summary interval
(``shared/contract/otlp_report.py``), over both tiers: what each source sent, what became
calls, what was refused and why, what was not GenAI, and the attribute names it dropped with
how often (names only: values are never kept anywhere).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.contract.otlp_report import MEASURES
from shared.contract.pipeline_events import OTLP_EVENT


def report_sql(since: datetime) -> str:
    """DuckDB: the interval counts summed per (scope, version, measure, item) since ``since``."""
    # Our own constants and a formatted datetime: nothing from outside reaches the SQL.
    return (
        "SELECT props_otlp_scope, props_otlp_scope_version, props_measure, props_item, "  # noqa: S608
        "sum(props_occurrences)::BIGINT FROM telemetry_events "
        f"WHERE name = '{OTLP_EVENT}' AND event_ts >= TIMESTAMPTZ '{since.isoformat()}' "
        "GROUP BY ALL"
    )


@dataclass
class SourceReport:
    """One instrumentation (scope and version): its totals, and its counts by item."""

    scope: str
    version: str
    totals: dict[str, int] = field(default_factory=lambda: dict.fromkeys(MEASURES, 0))
    items: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The report's JSON form."""
        return {"scope": self.scope, "version": self.version, **self.totals, "by_item": self.items}


def build_report(rows: Iterable[tuple[Any, ...]]) -> list[SourceReport]:
    """Sources with their totals and items, most spans first."""
    sources: dict[tuple[str, str], SourceReport] = {}
    for scope, version, measure, item, count in rows:
        key = (str(scope), str(version or ""))
        source = sources.setdefault(key, SourceReport(*key))
        source.totals[measure] = source.totals.get(measure, 0) + int(count)
        if item:
            by_item = source.items.setdefault(measure, {})
            by_item[item] = by_item.get(item, 0) + int(count)
    ordered = sorted(sources.values(), key=lambda s: (-s.totals["spans"], s.scope, s.version))
    for source in ordered:
        for measure, by_item in source.items.items():
            source.items[measure] = dict(sorted(by_item.items(), key=lambda kv: (-kv[1], kv[0])))
    return ordered


_LABELS = {
    "refused": "refused, by field",
    "token_anomaly": "token ledger broken, by invariant",
    "dropped_attribute": "attributes dropped, by name",
}


def render_text(sources: list[SourceReport], since: datetime, top: int) -> str:
    """The report as text, ``top`` items per list."""
    if not sources:
        return f"no OTLP exports since {since.isoformat()}"
    lines = [f"OTLP exports since {since.isoformat()}, by instrumentation:"]
    for source in sources:
        t = source.totals
        lines.append("")
        lines.append(f"{source.scope} {source.version or '(no version)'}")
        lines.append(
            f"  spans {t['spans']}, calls stored {t['calls']}, not GenAI {t['not_genai']}, "
            f"not a model call {t['not_model_call']}, refused {t['refused']}, "
            f"span events never read {t['span_events']}, log records refused {t['log_records']}"
        )
        for measure, label in _LABELS.items():
            by_item = source.items.get(measure)
            if not by_item:
                continue
            lines.append(f"  {label} ({len(by_item)}):")
            for item, count in list(by_item.items())[:top]:
                lines.append(f"    {count:10d}  {item}")
            if len(by_item) > top:
                lines.append(f"    … {len(by_item) - top} more (--top)")
    return "\n".join(lines)
