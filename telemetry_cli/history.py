"""Synthetic history written straight into the hot tier: what the backtest, the report and the
anomaly benchmark replay, and what ``make dev`` shows on its report before real traffic arrives.

Events go through the real intake (validation, sampling, pseudonyms) and the sink's writer, so
the rows are exactly what the pipeline would have stored; only Pub/Sub is skipped. Ingest's own
counts are stored too, one ``pipeline.intake`` interval per minute, as its summary would have.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from sqlalchemy import Engine

from shared.contract.intake import Intake
from shared.contract.pipeline_events import intake_events
from shared.contract.stored_event import StoredEvent
from shared.contract.validation import EventValidator
from shared.policy.privacy import Pseudonymiser
from shared.policy.sampling import SamplingPolicy, sample_rates
from shared.settings import Settings
from shared.storage.hot.partitions import ensure_partitions
from shared.storage.hot.writer import write_events
from telemetry_cli.generator import EventGenerator, Incident

#: Events written per transaction.
BATCH_EVENTS = 5_000


def fill_history(
    engine: Engine,
    settings: Settings,
    start: datetime,
    end: datetime,
    sessions_per_hour: int,
    incidents: Iterable[Incident] = (),
    seed: int = 0,
    progress: Callable[[int], object] | None = None,
) -> int:
    """Store generated sessions from ``start`` to ``end``; returns the events stored."""
    intake = Intake(
        EventValidator(),
        SamplingPolicy(sample_rates(settings)),
        Pseudonymiser(settings.pseudonym_keys),
    )
    with engine.begin() as conn:  # days without a partition would land in DEFAULT: still stored
        ensure_partitions(
            conn, end.date(), days_back=(end.date() - start.date()).days, days_ahead=0
        )
    generator = EventGenerator(seed=seed, now=end)
    received = datetime.now(UTC)
    accepted: list[StoredEvent] = []
    minutes: dict[datetime, tuple[Counter[str], Counter[str]]] = {}
    stored = 0

    def flush() -> None:
        nonlocal stored
        stored += write_events(engine, accepted).inserted
        accepted.clear()
        if progress:
            progress(stored)

    for session in generator.history(start, end, sessions_per_hour, incidents):
        result = intake.process_events(session, {"app_version": "1.8.0"}, received)
        accepted.extend(result.accepted)
        # What ingest's summary would have counted in that minute, stored as it stores it.
        minute = _minute_of(session[0]["ts"])
        counts, by_field = minutes.setdefault(minute, (Counter(), Counter()))
        counts.update(
            events=result.total,
            accepted=len(result.accepted),
            sampled_out=result.sampled_out,
            rejected=len(result.rejected),
        )
        by_field.update(result.rejected_by_field())
        if len(accepted) >= BATCH_EVENTS:
            flush()
    for minute, (counts, by_field) in sorted(minutes.items()):
        accepted.extend(intake_events(counts, by_field, minute, "history"))
    flush()
    return stored


def _minute_of(ts: object) -> datetime:
    at = datetime.fromisoformat(str(ts).replace("Z", "+00:00"))
    return at.replace(second=0, microsecond=0)
