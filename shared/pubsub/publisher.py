"""Publishing stored-form events to Pub/Sub within a bounded time.

The channel is global, created lazily on first use and reused (nothing connects at import).
A batch is published as one message per size-bounded chunk; :meth:`EventPublisher.publish`
returns once Pub/Sub has confirmed every message, or raises :class:`ServiceUnavailable` when it
cannot within the timeout. The caller then reports nothing as accepted; a message that did go
through is harmless when the sender retries, because the sink stores each event_id once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

from shared.contract.stored_event import StoredEvent
from shared.observability.tracing import inject_trace_attributes
from shared.pubsub import resources
from shared.pubsub._coalesce import GroupCommit
from shared.pubsub.message import encode_batches, message_attributes
from shared.pubsub.rpc import (
    MAX_MESSAGES_PER_REQUEST,
    Message,
    PublishRpc,
    publish_rpc,
    reset_publish_rpc,
)
from shared.settings import Settings, get_settings


class EventPublisher:
    """Publishes batches of stored-form events to one topic."""

    def __init__(self, settings: Settings | None = None, rpc: PublishRpc | None = None) -> None:
        self.settings = settings or get_settings()
        self._rpc = rpc
        self.topic_path = topic_path(self.settings, self.settings.telemetry_topic)
        self._group: GroupCommit[Message] = GroupCommit(
            self._flush, "Pub/Sub", MAX_MESSAGES_PER_REQUEST
        )

    @property
    def rpc(self) -> PublishRpc:
        """The Pub/Sub RPC used (the process-wide one unless one was given)."""
        if self._rpc is None:
            self._rpc = publish_rpc()
        return self._rpc

    def connect(self) -> None:
        """Open the channel and start connecting before the first publish needs it."""
        self.rpc.connect()

    def _flush(self, messages: list[Message], budget: float) -> None:
        self.rpc.send(self.topic_path, messages, budget)

    def publish(
        self,
        events: list[StoredEvent],
        source: str,
        extra_attributes: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> int:
        """Publish ``events``; the number of messages sent. Raises :class:`ServiceUnavailable`."""
        if not events:
            return 0
        budget = timeout if timeout is not None else self.settings.telemetry_publish_timeout_s
        messages: list[Message] = []
        for body, count in encode_batches(events):
            attributes = message_attributes(count, self.settings.telemetry_env, source)
            if extra_attributes:
                attributes.update(extra_attributes)
            inject_trace_attributes(attributes)
            messages.append((body, attributes))
        # Concurrent requests of this instance share Publish calls (see shared.pubsub._coalesce).
        self._group.submit(messages, budget)
        return len(messages)


def topic_path(settings: Settings, topic: str) -> str:
    """``projects/<project>/topics/<topic>`` for this deployment."""
    return f"projects/{settings.google_cloud_project}/topics/{topic}"


def dead_letter_sender(
    settings: Settings, rpc: PublishRpc | None = None
) -> Callable[[bytes, Mapping[str, str]], None]:
    """A function that publishes one message to the dead-letter topic within the timeout."""
    path = topic_path(settings, resources.TOPIC_DLQ)

    def send(data: bytes, attributes: Mapping[str, str]) -> None:
        budget = settings.telemetry_publish_timeout_s
        (rpc or publish_rpc()).send(path, [(data, attributes)], budget)

    return send


_publisher: EventPublisher | None = None
_publisher_lock = threading.Lock()


def get_publisher() -> EventPublisher:
    """The process-wide publisher for the configured topic."""
    global _publisher
    if _publisher is None:
        with _publisher_lock:
            if _publisher is None:
                _publisher = EventPublisher()
    return _publisher


def reset_publisher() -> None:
    """Forget the process-wide publisher and channel (tests, after the environment changes)."""
    global _publisher
    with _publisher_lock:
        _publisher = None
    reset_publish_rpc()
