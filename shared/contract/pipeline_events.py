"""The pipeline's own events: ingest's counts per summary interval, stored like any event
(beacon intake in ``pipeline.intake``, OTLP exports per instrumentation in ``pipeline.otlp``).

Ingest refuses a client's ``pipeline.*`` event (``SERVER_ONLY_CATEGORIES``); it builds these in
their stored form itself, so the rejected-event rate is a metric of the catalog like the others.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from shared.contract.otlp_report import Row
from shared.contract.stored_event import StoredEvent

INTAKE_EVENT = "pipeline.intake"
#: What ingest's OTLP routes made of each instrumentation's exports (``otlp_report.py``).
OTLP_EVENT = "pipeline.otlp"
#: The reason of the totals row.
ALL_REASONS = "all"
_REASON_UNSAFE = re.compile(r"[^A-Za-z0-9_.\[\]-]")


def _reason(field: str) -> str:
    return _REASON_UNSAFE.sub("_", field)[:64] or "event"


def _pipeline_event(name: str, props: dict[str, Any], now: datetime, instance: str) -> StoredEvent:
    """One of ingest's own events for an interval of one instance, in its stored form."""
    return StoredEvent(
        event_id=str(uuid.uuid4()),
        name=name,
        version=1,
        category="pipeline",
        event_ts=now,
        received_at=now,
        session_id=f"pipeline-ingest-{instance}",
        props=props,
        sample_rate=1.0,
    )


def intake_events(
    counts: Mapping[str, int],
    rejected_by_field: Mapping[str, int],
    now: datetime,
    instance: str,
) -> list[StoredEvent]:
    """One totals row and one row per rejection reason for an interval of beacon intake."""
    total = {
        "received": int(counts.get("events", 0)),
        "accepted": int(counts.get("accepted", 0)),
        "sampled_out": int(counts.get("sampled_out", 0)),
        "rejected": int(counts.get("rejected", 0)),
    }
    if not any(total.values()):
        return []
    out = [_pipeline_event(INTAKE_EVENT, {"reason": ALL_REASONS, **total}, now, instance)]
    for field, rejected in sorted(rejected_by_field.items()):
        props = {"reason": _reason(field), "received": 0, "accepted": 0, "sampled_out": 0}
        props["rejected"] = int(rejected)
        out.append(_pipeline_event(INTAKE_EVENT, props, now, instance))
    return out


def otlp_events(rows: Mapping[Row, int], now: datetime, instance: str) -> list[StoredEvent]:
    """One ``pipeline.otlp`` event per (scope, version, measure, item) of an interval."""
    return [
        _pipeline_event(
            OTLP_EVENT,
            {
                "otlp_scope": scope or "(none)",
                "otlp_scope_version": version,
                "measure": measure,
                "item": item,
                "occurrences": int(count),
            },
            now,
            instance,
        )
        for (scope, version, measure, item), count in sorted(rows.items())
        if count
    ]
