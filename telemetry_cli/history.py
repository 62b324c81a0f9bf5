"""Synthetic history written straight into the hot tier: what the backtest, the report and the
anomaly benchmark replay, and what ``make dev`` shows on its report before real traffic arrives.

Events go through the real intake (validation, sampling, pseudonyms) and the sink's writer, so
the rows are exactly what the pipeline would have stored; only Pub/Sub is skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from sqlalchemy import Engine

from shared.contract.intake import Intake
from shared.contract.validation import EventValidator
from shared.policy.privacy import Pseudonymiser
from shared.policy.sampling import SamplingPolicy
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
        SamplingPolicy(settings.sample_rates),
        Pseudonymiser(settings.pseudonym_keys),
    )
    with engine.begin() as conn:  # days without a partition would land in DEFAULT: still stored
        ensure_partitions(
            conn, end.date(), days_back=(end.date() - start.date()).days, days_ahead=0
        )
    generator = EventGenerator(seed=seed, now=end)
    received = datetime.now(UTC)
    pending: list[dict[str, object]] = []
    stored = 0

    def flush() -> None:
        nonlocal stored
        result = intake.process_events(pending, {"app_version": "1.8.0"}, received)
        if result.rejected:
            raise ValueError(f"the generator made invalid events: {result.rejected[0].reason}")
        stored += write_events(engine, result.accepted).inserted
        pending.clear()
        if progress:
            progress(stored)

    for session in generator.history(start, end, sessions_per_hour, incidents):
        pending.extend(session)
        if len(pending) >= BATCH_EVENTS:
            flush()
    if pending:
        flush()
    return stored
