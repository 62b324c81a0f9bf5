"""Gauges read from the pipeline itself, not from events: the catalog's ``probe`` names."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Engine, text

from shared.settings import Settings
from shared.storage.layout import EVENT_TABLES
from shared.storage.warm.catalog import watermark

#: The most DLQ messages one probe looks at (it releases them again at once).
DLQ_PROBE_LIMIT = 1000
#: Seconds a probe's pull waits for messages (an empty subscription answers after this).
DLQ_PROBE_WAIT_S = 2.0


def snapshot_lag_hours(engine: Engine) -> float:
    """Hours since the oldest hot row no finished snapshot holds yet was stored (0: caught up)."""
    oldest: datetime | None = None
    with engine.connect() as conn:
        for table in EVENT_TABLES:
            mark = watermark(conn, table)
            found = conn.execute(
                text(f"SELECT min(received_at) FROM {table} WHERE stored_seq >= :w"),  # noqa: S608
                {"w": mark},
            ).scalar()
            if found is not None and (oldest is None or found < oldest):
                oldest = found
    if oldest is None:
        return 0.0
    return max(0.0, (datetime.now(UTC) - oldest).total_seconds() / 3600)


def dead_letter_depth(settings: Settings) -> float:
    """Messages in the DLQ's hold subscription (counted up to :data:`DLQ_PROBE_LIMIT`)."""
    from shared.pubsub.dlq_hold import summarise

    return float(summarise(settings, limit=DLQ_PROBE_LIMIT, wait_s=DLQ_PROBE_WAIT_S).messages)


#: The probe names a gauge may use.
PROBE_NAMES = frozenset({"snapshot_lag_hours", "dead_letter_depth"})


def probes(settings: Settings, engine: Engine) -> dict[str, Callable[[], float | None]]:
    """Every probe the catalog may name, bound to this deployment."""
    return {
        "snapshot_lag_hours": lambda: snapshot_lag_hours(engine),
        "dead_letter_depth": lambda: dead_letter_depth(settings),
    }
