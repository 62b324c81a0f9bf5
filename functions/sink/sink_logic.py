"""The sink's logic: one Pub/Sub message in, its events stored exactly once, nothing lost.

No framework here. :meth:`SinkHandler.handle` decodes a pushed message strictly, checks every
event against the contract ingest applied (``StoredEventCheck``, on the typed event), stores the
valid ones in one transaction, and dead-letters what can never be stored (to
``telemetry-events-dlq``, with the original bytes and a reason) before the message is
acknowledged.

* A transient failure raises :class:`ServiceUnavailable`: the function answers non-2xx and
  Pub/Sub redelivers with backoff, harmless because every write is idempotent.
* An unexpected error keeps its own type: it is raised as it is, so Pub/Sub retries it too and,
  after max attempts, dead-letters it. Nothing is lost, and the traceback is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import msgspec

from shared.contract.stored_check import StoredEventCheck
from shared.contract.stored_event import StoredEvent
from shared.errors import ContractViolation, ServiceUnavailable
from shared.pubsub import dead_letter
from shared.pubsub.message import decode_message, encode_message
from shared.pubsub.push import PushedMessage
from shared.storage.failures import classify_failure
from shared.storage.hot.errors import DataRefused
from shared.storage.hot.writer import WriteResult

logger = logging.getLogger("sink")

#: Writes a batch of stored events in one transaction, idempotently.
Store = Callable[[Sequence[StoredEvent]], WriteResult]
#: Publishes one message, with its attributes, to the dead-letter topic.
DeadLetterSend = Callable[[bytes, Mapping[str, str]], None]


@dataclass(frozen=True)
class SinkOutcome:
    """What became of one message."""

    events: int
    inserted: int
    duplicates: int
    dead_lettered: int
    #: Events of erased people, dropped (the erasure suppression list).
    suppressed: int = 0


@dataclass(frozen=True)
class _Refused:
    """An event that can never be stored: its original bytes and why."""

    raw: msgspec.Raw
    reason: str


class SinkHandler:
    """Stores messages of stored-form events; dead-letters what can never be stored."""

    def __init__(
        self, store: Store, check: StoredEventCheck, dead_letter_send: DeadLetterSend
    ) -> None:
        self.store = store
        self.check = check
        self.dead_letter_send = dead_letter_send

    def handle(self, message: PushedMessage) -> SinkOutcome:
        """Store one message's events; raises to ask Pub/Sub for redelivery."""
        if message.problem is not None:
            return self._refuse_message(message, message.problem)
        try:
            body = decode_message(message.data)
        except ContractViolation as exc:
            return self._refuse_message(message, exc.reason)
        good: list[tuple[msgspec.Raw, StoredEvent]] = []
        refused: list[_Refused] = []
        for index, raw in enumerate(body.events):
            try:
                event = self.check.decode(raw, f"events[{index}]")
            except ContractViolation as exc:
                refused.append(_Refused(raw, exc.reason))
                continue
            good.append((raw, event))
        inserted = suppressed = 0
        if good:
            inserted, suppressed, refused_rows = self._store(good)
            refused.extend(refused_rows)
        if refused:
            self._send(
                encode_message([r.raw for r in refused], [r.reason for r in refused]),
                message,
                refused[0].reason,
                len(refused),
            )
        stored = len(body.events) - len(refused)
        outcome = SinkOutcome(
            len(body.events), inserted, stored - inserted - suppressed, len(refused), suppressed
        )
        self._log(message.message_id, outcome)
        return outcome

    def _store(
        self, batch: list[tuple[msgspec.Raw, StoredEvent]]
    ) -> tuple[int, int, list[_Refused]]:
        """Write a batch; ``(inserted, suppressed, refused)``. When the database refuses the
        data, the rows it refuses are isolated and the rest stored."""
        try:
            result = self.store([event for _, event in batch])
            return result.inserted, result.suppressed, []
        except Exception as exc:
            self._raise_unless_data_refused(exc)
        # The batch holds data PostgreSQL refuses: store event by event to keep the rest.
        inserted = suppressed = 0
        refused: list[_Refused] = []
        for raw, event in batch:
            try:
                result = self.store([event])
            except Exception as exc:
                refused.append(_Refused(raw, self._raise_unless_data_refused(exc)))
                continue
            inserted += result.inserted
            suppressed += result.suppressed
        return inserted, suppressed, refused

    @staticmethod
    def _raise_unless_data_refused(error: Exception) -> str:
        """The reason when the database refused the data itself; otherwise raise."""
        typed = classify_failure(error)
        if typed is not None and typed.transient:
            raise typed from error
        if not isinstance(typed, DataRefused):
            raise error  # not a database verdict on the data: keep its type, let Pub/Sub retry
        return typed.message

    def _refuse_message(self, message: PushedMessage, reason: str) -> SinkOutcome:
        """Dead-letter a whole message as it came (its data undecodable)."""
        self._send(message.data, message, reason, 1)
        outcome = SinkOutcome(0, 0, 0, 1)
        self._log(message.message_id, outcome)
        return outcome

    def _send(self, data: bytes, message: PushedMessage, reason: str, count: int) -> None:
        attributes = dead_letter.sink_attributes(
            message.attributes, reason, count, message.message_id
        )
        try:
            self.dead_letter_send(data, attributes)
        except ServiceUnavailable:
            raise
        except Exception as exc:
            raise ServiceUnavailable(
                f"dead-letter publish failed ({type(exc).__name__})", service="pubsub"
            ) from exc

    @staticmethod
    def _log(message_id: str | None, outcome: SinkOutcome) -> None:
        logger.info(
            "message stored" if not outcome.dead_lettered else "message dead-lettered",
            extra={
                "pubsub_message_id": message_id,
                "events": outcome.events,
                "inserted": outcome.inserted,
                "duplicates": outcome.duplicates,
                "dead_lettered": outcome.dead_lettered,
                "suppressed": outcome.suppressed,
            },
        )
