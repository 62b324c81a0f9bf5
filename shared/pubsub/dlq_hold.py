"""The dead-letter queue's hold subscription, looked at without consuming it.

``telemetry dlq`` lists it by reason and the anomaly function's ``dead_letter_depth`` metric
counts it; both release every message they pulled at once (ack deadline 0).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from shared.pubsub import dead_letter
from shared.pubsub import resources as names
from shared.settings import Settings


def subscriber_client() -> Any:
    """A Pub/Sub subscriber client (the emulator when ``PUBSUB_EMULATOR_HOST`` is set)."""
    from google.cloud import pubsub_v1  # type: ignore[attr-defined]

    return pubsub_v1.SubscriberClient()


def pull(subscriber: Any, path: str, batch: int, timeout_s: float = 10.0) -> list[Any]:
    """Up to ``batch`` messages of a subscription (fewer, or none, when it holds fewer)."""
    response = subscriber.pull(
        request={"subscription": path, "max_messages": batch}, timeout=timeout_s
    )
    return list(response.received_messages)


def release(subscriber: Any, path: str, ack_ids: list[str]) -> None:
    """Hand pulled messages back at once (ack deadline 0), in Pub/Sub's batches of 1,000."""
    for start in range(0, len(ack_ids), 1000):
        subscriber.modify_ack_deadline(
            request={
                "subscription": path,
                "ack_ids": ack_ids[start : start + 1000],
                "ack_deadline_seconds": 0,
            }
        )


@dataclass
class DlqSummary:
    """Messages in the hold subscription, by reason."""

    messages: int = 0
    events: int = 0
    by_reason: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class HeldMessage:
    """One message of the hold subscription: its attributes and its bytes."""

    message_id: str
    attributes: dict[str, str]
    data: bytes


def peek(settings: Settings, limit: int = 10_000, wait_s: float = 10.0) -> list[HeldMessage]:
    """Up to ``limit`` held messages, without consuming them (they are released again); each
    pull waits up to ``wait_s`` for messages."""
    subscriber = subscriber_client()
    path = subscriber.subscription_path(settings.google_cloud_project, names.SUBSCRIPTION_DLQ)
    messages: dict[str, HeldMessage] = {}
    held: list[str] = []
    try:
        while len(held) < limit:
            received = pull(subscriber, path, min(1000, limit - len(held)), wait_s)
            if not received:
                break
            for item in received:
                message = item.message
                messages[message.message_id] = HeldMessage(
                    message.message_id, dict(message.attributes), bytes(message.data)
                )
                held.append(item.ack_id)
    finally:
        release(subscriber, path, held)
        subscriber.close()
    return list(messages.values())


def summarise(settings: Settings, limit: int = 10_000, wait_s: float = 10.0) -> DlqSummary:
    """Held messages by reason (see :func:`peek`)."""
    summary = DlqSummary()
    for message in peek(settings, limit, wait_s):
        summary.messages += 1
        summary.events += int(message.attributes.get(dead_letter.EVENT_COUNT, "1") or 1)
        summary.by_reason[dead_letter.reason_of(message.attributes)] += 1
    return summary
