"""Publishing stored-form events to Pub/Sub within a bounded time.

The client is global, created lazily on first use and reused (nothing connects at import).
A batch is published as one message per size-bounded chunk; :meth:`EventPublisher.publish`
returns once Pub/Sub has confirmed every message, or raises :class:`ServiceUnavailable` when it
cannot within the timeout. The caller then reports nothing as accepted; a message that did go
through is harmless when the sender retries, because the sink stores each event_id once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from concurrent import futures
from typing import Any

from shared.errors import ServiceUnavailable
from shared.records import StoredEvent, encode_batches, message_attributes
from shared.settings import Settings, get_settings
from shared.tracing import inject_trace_attributes

logger = logging.getLogger(__name__)
#: Pub/Sub accepts at most 1,000 messages and 10 MB per Publish request.
MAX_MESSAGES_PER_REQUEST = 1000
MAX_REQUEST_BYTES = 9_000_000


def _requests(messages: list[Any]) -> list[list[Any]]:
    """Group messages into Publish requests within Pub/Sub's per-request limits."""
    groups: list[list[Any]] = []
    size = 0
    for message in messages:
        length = len(message.data)
        if (
            not groups
            or len(groups[-1]) >= MAX_MESSAGES_PER_REQUEST
            or size + length > MAX_REQUEST_BYTES
        ):
            groups.append([])
            size = 0
        groups[-1].append(message)
        size += length
    return groups


_gapic_client: Any = None
_gapic_lock = threading.Lock()


def gapic_client() -> Any:
    """The generated (GAPIC) Pub/Sub publisher client of this process, built on first use.

    The library's batching ``PublisherClient`` spends a thread and about 1 ms of CPU per batch
    on its machinery; our callers already hold a batch, so they send it with one direct
    ``Publish`` call (the wrapper is still what points the channel at the emulator).
    """
    global _gapic_client
    if _gapic_client is None:
        with _gapic_lock:
            if _gapic_client is None:
                from google.cloud import pubsub_v1  # type: ignore[attr-defined]

                _gapic_client = pubsub_v1.PublisherClient().api
    return _gapic_client


def send_messages(
    client: Any,
    topic_path: str,
    messages: list[tuple[bytes, Mapping[str, str]]],
    budget: float,
) -> int:
    """Publish ``(data, attributes)`` messages within ``budget`` seconds, or raise.

    Raises :class:`ServiceUnavailable` when Pub/Sub cannot confirm them in time or refuses.
    """
    from google.api_core import exceptions as gexc
    from google.api_core.retry import Retry, if_exception_type
    from google.pubsub_v1.types import PubsubMessage

    retry = Retry(
        predicate=if_exception_type(
            gexc.ServiceUnavailable,
            gexc.DeadlineExceeded,
            gexc.InternalServerError,
            gexc.Aborted,
            gexc.ResourceExhausted,
            gexc.Unknown,
        ),
        initial=0.05,
        maximum=1.0,
        multiplier=2.0,
        timeout=budget,
    )
    protos = [PubsubMessage(data=data, attributes=dict(attrs)) for data, attrs in messages]
    started = time.monotonic()
    for group in _requests(protos):
        remaining = budget - (time.monotonic() - started)
        if remaining <= 0:
            raise ServiceUnavailable(
                f"Pub/Sub did not confirm the batch within {budget:.1f} s", service="pubsub"
            )
        try:
            client.publish(topic=topic_path, messages=group, retry=retry, timeout=remaining)
        except (gexc.RetryError, gexc.DeadlineExceeded, futures.TimeoutError, TimeoutError):
            raise ServiceUnavailable(
                f"Pub/Sub did not confirm the batch within {budget:.1f} s", service="pubsub"
            ) from None
        except gexc.GoogleAPICallError as exc:
            logger.error("publish failed", extra={"error_type": type(exc).__name__})
            raise ServiceUnavailable(
                f"Pub/Sub refused the batch ({type(exc).__name__})", service="pubsub"
            ) from None
    return len(protos)


class EventPublisher:
    """Publishes batches of stored-form events to one topic."""

    def __init__(self, settings: Settings | None = None, client: Any = None) -> None:
        self.settings = settings or get_settings()
        self._client = client
        self.topic_path = topic_path(self.settings, self.settings.telemetry_topic)

    @property
    def client(self) -> Any:
        """The Pub/Sub client used (the process-wide GAPIC client unless one was given)."""
        if self._client is None:
            self._client = gapic_client()
        return self._client

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
        messages: list[tuple[bytes, Mapping[str, str]]] = []
        for body, count in encode_batches(events):
            attributes = message_attributes(count, self.settings.telemetry_env, source)
            if extra_attributes:
                attributes.update(extra_attributes)
            inject_trace_attributes(attributes)
            messages.append((body, attributes))
        return send_messages(self.client, self.topic_path, messages, budget)


def topic_path(settings: Settings, topic: str) -> str:
    """``projects/<project>/topics/<topic>`` for this deployment."""
    return f"projects/{settings.google_cloud_project}/topics/{topic}"


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
    """Forget the process-wide publisher and client (tests, after the environment changes)."""
    global _publisher, _gapic_client
    with _publisher_lock:
        _publisher = None
    with _gapic_lock:
        _gapic_client = None
