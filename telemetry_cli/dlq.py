"""The dead-letter queue: what sits in it, and replaying it to the main topic after a fix."""

from __future__ import annotations

from collections.abc import Callable

from shared.pubsub import dead_letter
from shared.pubsub import resources as names
from shared.pubsub.dlq_hold import pull, release, subscriber_client
from shared.pubsub.publisher import topic_path
from shared.pubsub.rpc import publish_rpc
from shared.settings import Settings


def replay(
    settings: Settings,
    reason_contains: str | None = None,
    limit: int | None = None,
    progress: Callable[[int], object] | None = None,
    exhausted_only: bool = False,
) -> tuple[int, int]:
    """Republish held messages to the main topic, then acknowledge them.

    Only messages whose reason contains ``reason_contains`` (all when None) are replayed, and
    with ``exhausted_only`` only those Pub/Sub dead-lettered after max delivery attempts (an
    outage outlasted the retries), never those the sink dead-lettered for a reason; the
    others are released untouched. Returns ``(replayed, skipped)``. Safe to run twice: the sink
    stores each event once, and a message is acknowledged only after its copy is confirmed.
    """
    subscriber = subscriber_client()
    path = subscriber.subscription_path(settings.google_cloud_project, names.SUBSCRIPTION_DLQ)
    target = topic_path(settings, settings.telemetry_topic)
    replayed = skipped = 0
    skipped_ids: list[str] = []
    try:
        while limit is None or replayed < limit:
            batch = 100 if limit is None else min(100, limit - replayed)
            received = pull(subscriber, path, batch)
            if not received:
                break
            chosen = []
            for item in received:
                attributes = dict(item.message.attributes)
                unwanted = exhausted_only and not dead_letter.is_exhausted(attributes)
                if unwanted or (
                    reason_contains and reason_contains not in dead_letter.reason_of(attributes)
                ):
                    skipped_ids.append(item.ack_id)
                    continue
                clean = dead_letter.replay_attributes(attributes)
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
        release(subscriber, path, skipped_ids)
        subscriber.close()
    return replayed, skipped
