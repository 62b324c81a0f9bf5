"""The dead-letter queue: what sits in it, and replaying it to the main topic after a fix."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shared import names
from shared.publisher import topic_path
from shared.pubsub_rpc import publish_rpc
from shared.settings import Settings

#: Attributes added by dead-lettering, removed again on replay.
DLQ_ATTRIBUTES = ("reason", "dead_lettered_by", "dead_lettered_at", "original_message_id")
PUBSUB_REASON = "max delivery attempts exceeded (dead-lettered by Pub/Sub)"


@dataclass
class DlqSummary:
    """Messages in the hold subscription, by reason."""

    messages: int = 0
    events: int = 0
    by_reason: Counter[str] = field(default_factory=Counter)


def reason_of(attributes: dict[str, str]) -> str:
    """The dead-letter reason of a message (Pub/Sub's own dead-letters carry none)."""
    if "reason" in attributes:
        return attributes["reason"]
    if any(k.startswith("CloudPubSubDeadLetter") for k in attributes):
        return PUBSUB_REASON
    return "unknown"


def _subscriber() -> Any:
    from google.cloud import pubsub_v1  # type: ignore[attr-defined]

    return pubsub_v1.SubscriberClient()


def _pull(subscriber: Any, path: str, batch: int) -> list[Any]:
    response = subscriber.pull(request={"subscription": path, "max_messages": batch}, timeout=10)
    return list(response.received_messages)


def summarise(settings: Settings, limit: int = 10_000) -> DlqSummary:
    """Look at up to ``limit`` messages without consuming them (they are released again)."""
    subscriber = _subscriber()
    path = subscriber.subscription_path(settings.google_cloud_project, names.SUBSCRIPTION_DLQ)
    summary = DlqSummary()
    held: list[str] = []
    try:
        while summary.messages < limit:
            received = _pull(subscriber, path, min(1000, limit - summary.messages))
            if not received:
                break
            for item in received:
                attributes = dict(item.message.attributes)
                summary.messages += 1
                summary.events += int(attributes.get("event_count", "1") or 1)
                summary.by_reason[reason_of(attributes)] += 1
                held.append(item.ack_id)
    finally:
        for start in range(0, len(held), 1000):
            subscriber.modify_ack_deadline(
                request={
                    "subscription": path,
                    "ack_ids": held[start : start + 1000],
                    "ack_deadline_seconds": 0,
                }
            )
        subscriber.close()
    return summary


def replay(
    settings: Settings,
    reason_contains: str | None = None,
    limit: int | None = None,
    progress: Callable[[int], object] | None = None,
) -> tuple[int, int]:
    """Republish held messages to the main topic, then acknowledge them.

    Only messages whose reason contains ``reason_contains`` (all when None) are replayed; the
    others are released untouched. Returns ``(replayed, skipped)``. Safe to run twice: the sink
    stores each event once, and a message is acknowledged only after its copy is confirmed.
    """
    subscriber = _subscriber()
    path = subscriber.subscription_path(settings.google_cloud_project, names.SUBSCRIPTION_DLQ)
    target = topic_path(settings, settings.telemetry_topic)
    replayed = skipped = 0
    skipped_ids: list[str] = []
    try:
        while limit is None or replayed < limit:
            batch = 100 if limit is None else min(100, limit - replayed)
            received = _pull(subscriber, path, batch)
            if not received:
                break
            chosen = []
            for item in received:
                attributes = dict(item.message.attributes)
                if reason_contains and reason_contains not in reason_of(attributes):
                    skipped_ids.append(item.ack_id)
                    continue
                clean = {
                    k: v
                    for k, v in attributes.items()
                    if k not in DLQ_ATTRIBUTES and not k.startswith("CloudPubSubDeadLetter")
                }
                clean["replayed"] = "true"
                chosen.append((item, (item.message.data, clean)))
            if chosen:
                publish_rpc().send(target, [m for _, m in chosen], 30.0)
                subscriber.acknowledge(
                    request={"subscription": path, "ack_ids": [i.ack_id for i, _ in chosen]}
                )
                replayed += len(chosen)
                if progress:
                    progress(len(chosen))
        skipped = len(skipped_ids)
    finally:
        for start in range(0, len(skipped_ids), 1000):
            subscriber.modify_ack_deadline(
                request={
                    "subscription": path,
                    "ack_ids": skipped_ids[start : start + 1000],
                    "ack_deadline_seconds": 0,
                }
            )
        subscriber.close()
    return replayed, skipped
