"""The dead-letter queue's contract: the attributes a dead-lettered message carries, and why.

Two things put a message on ``telemetry-events-dlq``:

* the sink, for a message or events that can never be stored (a contract reason). It adds
  :data:`REASON`, :data:`DEAD_LETTERED_BY` = ``sink`` and the rest of :data:`SINK_ATTRIBUTES`;
  such messages wait for a person (``telemetry dlq``), because replaying them unchanged would
  fail again.
* Pub/Sub itself, after the subscription's max delivery attempts (an outage outlasted the
  retries). It adds ``CloudPubSubDeadLetterSource*`` attributes; such a message is
  :func:`is_exhausted` and is replayed once the sink answers again.

The sink and the operator CLI both read these names from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

#: Why the sink dead-lettered a message (its first refused event's reason).
REASON = "reason"
#: Who dead-lettered it: ``sink`` (a contract reason) or absent (Pub/Sub, after max attempts).
DEAD_LETTERED_BY = "dead_lettered_by"
DEAD_LETTERED_AT = "dead_lettered_at"
ORIGINAL_MESSAGE_ID = "original_message_id"
EVENT_COUNT = "event_count"
#: Attributes the sink adds when it dead-letters (removed again on replay).
SINK_ATTRIBUTES = (REASON, DEAD_LETTERED_BY, DEAD_LETTERED_AT, ORIGINAL_MESSAGE_ID)
#: Prefix of the attributes Pub/Sub adds when it dead-letters after max delivery attempts.
PUBSUB_PREFIX = "CloudPubSubDeadLetter"
#: What :func:`reason_of` says of a message Pub/Sub dead-lettered.
EXHAUSTED_REASON = "max delivery attempts exceeded (dead-lettered by Pub/Sub)"
#: Pub/Sub attribute values are limited to 1,024 bytes.
MAX_REASON_CHARS = 900
#: Set on a message that was replayed from the DLQ to the events topic.
REPLAYED = "replayed"


def sink_attributes(
    original: Mapping[str, str], reason: str, count: int, message_id: str | None
) -> dict[str, str]:
    """The attributes of a message the sink dead-letters (the original ones kept)."""
    return {
        **{k: v for k, v in original.items() if not k.startswith(PUBSUB_PREFIX)},
        REASON: reason[:MAX_REASON_CHARS],
        EVENT_COUNT: str(count),
        DEAD_LETTERED_BY: "sink",
        DEAD_LETTERED_AT: datetime.now(UTC).isoformat(),
        ORIGINAL_MESSAGE_ID: message_id or "",
    }


def replay_attributes(held: Mapping[str, str]) -> dict[str, str]:
    """The attributes of a held message as it goes back to the events topic."""
    clean = {
        k: v
        for k, v in held.items()
        if k not in SINK_ATTRIBUTES and not k.startswith(PUBSUB_PREFIX)
    }
    clean[REPLAYED] = "true"
    return clean


def is_exhausted(attributes: Mapping[str, str]) -> bool:
    """True for a message Pub/Sub dead-lettered after max attempts, not the sink for a reason."""
    return attributes.get(DEAD_LETTERED_BY) != "sink" and any(
        k.startswith(PUBSUB_PREFIX) for k in attributes
    )


def reason_of(attributes: Mapping[str, str]) -> str:
    """Why a held message is in the DLQ."""
    if REASON in attributes:
        return attributes[REASON]
    if any(k.startswith(PUBSUB_PREFIX) for k in attributes):
        return EXHAUSTED_REASON
    return "unknown"
