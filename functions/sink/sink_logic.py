"""The sink's logic: one Pub/Sub message in, its events stored exactly once, nothing lost.

No framework here. :meth:`SinkHandler.handle_message` decodes a message, re-checks every event
against the contract, stores the valid ones in one transaction (``shared.hot_store``), and
dead-letters what cannot ever be stored (to ``telemetry-events-dlq`` with a ``reason``
attribute) before the message is acknowledged. A transient failure raises
:class:`ServiceUnavailable`: the function then answers non-2xx and Pub/Sub redelivers with
backoff, which is harmless because every write is idempotent.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Engine

from shared.db_errors import classify
from shared.errors import ContractViolation, ServiceUnavailable
from shared.hot_store import WriteResult, write_events
from shared.records import MESSAGE_VERSION, StoredEvent, decode_batch
from shared.registry import Registry

logger = logging.getLogger("sink")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
#: Pub/Sub attribute values are limited to 1,024 bytes.
_MAX_REASON = 900

DeadLetterSend = Callable[[bytes, Mapping[str, str]], None]


@dataclass(frozen=True)
class SinkOutcome:
    """What became of one message."""

    events: int
    inserted: int
    duplicates: int
    dead_lettered: int


def recheck(raw: Any, registry: Registry) -> StoredEvent:
    """A stored-form event that still satisfies the contract, or a :class:`ContractViolation`."""
    if not isinstance(raw, dict):
        raise ContractViolation("stored event is not an object")
    event = StoredEvent.from_wire(raw)
    if not _UUID.match(event.event_id):
        raise ContractViolation("event_id: not a lower-case UUID", "event_id")
    spec = registry.get(event.name, event.version)
    if event.category != spec.category:
        raise ContractViolation(
            f"category: {event.category!r} is not the registry's {spec.category!r}", "category"
        )
    if not 0.0 < event.sample_rate <= 1.0:
        raise ContractViolation("sample_rate: must be in (0, 1]", "sample_rate")
    if event.event_ts.tzinfo is None or event.received_at.tzinfo is None:
        raise ContractViolation("event_ts and received_at must carry a time zone", "event_ts")
    if not spec.validator.is_valid(event.props):
        error = spec.validator.first_error(event.props)
        path = ".".join(["props", *(str(p) for p in error.instance_path)]) if error else "props"
        raise ContractViolation(f"{path}: {error.message if error else 'invalid'}", path)
    return event


class SinkHandler:
    """Stores messages of stored-form events; dead-letters what can never be stored."""

    def __init__(
        self,
        engine_factory: Callable[[], Engine],
        registry: Registry,
        dead_letter: DeadLetterSend,
    ) -> None:
        self.engine_factory = engine_factory
        self.registry = registry
        self.dead_letter = dead_letter

    def handle_message(
        self, data: bytes, attributes: Mapping[str, str] | None, message_id: str | None
    ) -> SinkOutcome:
        """Store one message's events; raises :class:`ServiceUnavailable` to ask for redelivery."""
        attributes = dict(attributes or {})
        try:
            raws = decode_batch(data)
        except ContractViolation as exc:
            self._dead_letter_message(data, attributes, message_id, exc.reason, 1)
            self._log(message_id, 0, 0, 0, 1, "undecodable")
            return SinkOutcome(events=0, inserted=0, duplicates=0, dead_lettered=1)
        good: list[StoredEvent] = []
        bad: list[tuple[Any, str]] = []
        for raw in raws:
            try:
                good.append(recheck(raw, self.registry))
            except ContractViolation as exc:
                bad.append((raw, exc.reason))
        inserted = 0
        refused: list[tuple[Any, str]] = []
        if good:
            stored, refused = self._store(good)
            inserted = stored.inserted
        bad.extend(refused)
        if bad:
            self._dead_letter_events(bad, attributes, message_id)
        duplicates = len(good) - len(refused) - inserted
        self._log(message_id, len(raws), inserted, duplicates, len(bad), None)
        return SinkOutcome(len(raws), inserted, duplicates, len(bad))

    def _store(self, events: list[StoredEvent]) -> tuple[WriteResult, list[tuple[Any, str]]]:
        """Write a batch; when the database refuses the data, isolate the rows it refuses."""
        engine = self.engine_factory()
        try:
            return write_events(engine, events), []
        except Exception as exc:
            error = classify(exc)
            if error.transient:
                raise error from None
        # The batch holds data PostgreSQL refuses: store event by event to keep the rest.
        inserted = 0
        refused: list[tuple[Any, str]] = []
        for event in events:
            try:
                inserted += write_events(engine, [event]).inserted
            except Exception as exc:
                error = classify(exc)
                if error.transient:
                    raise error from None
                refused.append((event, error.message))
        return WriteResult(offered=len(events), inserted=inserted), refused

    def _dead_letter_events(
        self, bad: Sequence[tuple[Any, str]], attributes: dict[str, str], message_id: str | None
    ) -> None:
        wire = [raw.to_wire() if isinstance(raw, StoredEvent) else raw for raw, _ in bad]
        body = orjson.dumps({"v": MESSAGE_VERSION, "events": wire, "reasons": [r for _, r in bad]})
        self._dead_letter_message(body, attributes, message_id, bad[0][1], len(bad))

    def _dead_letter_message(
        self,
        data: bytes,
        attributes: dict[str, str],
        message_id: str | None,
        reason: str,
        count: int,
    ) -> None:
        dlq_attributes = {
            **{k: v for k, v in attributes.items() if not k.startswith("CloudPubSubDeadLetter")},
            "reason": reason[:_MAX_REASON],
            "event_count": str(count),
            "dead_lettered_by": "sink",
            "dead_lettered_at": datetime.now(UTC).isoformat(),
            "original_message_id": message_id or "",
        }
        try:
            self.dead_letter(data, dlq_attributes)
        except ServiceUnavailable:
            raise
        except Exception as exc:
            raise ServiceUnavailable(
                f"dead-letter publish failed ({type(exc).__name__})", service="pubsub"
            ) from None

    def _log(
        self,
        message_id: str | None,
        events: int,
        inserted: int,
        duplicates: int,
        dead_lettered: int,
        problem: str | None,
    ) -> None:
        logger.info(
            "message stored" if not problem else "message dead-lettered",
            extra={
                "pubsub_message_id": message_id,
                "events": events,
                "inserted": inserted,
                "duplicates": duplicates,
                "dead_lettered": dead_lettered,
            },
        )
