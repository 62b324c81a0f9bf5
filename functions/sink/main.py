"""Sink: Pub/Sub push (CloudEvent ``google.cloud.pubsub.topic.v1.messagePublished``) into the
hot tier, exactly one row per event.

Entry point ``sink``. Thin: unwrap the push, call :class:`sink_logic.SinkHandler`. Returning
acknowledges the message; raising answers 500, so Pub/Sub redelivers it with backoff and, after
the subscription's max delivery attempts, dead-letters it. The engine and the Pub/Sub channel
are built lazily on the first message and reused.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import functions_framework
from cloudevents.http import CloudEvent

if TYPE_CHECKING:
    from sink_logic import SinkHandler

    from shared.contract.stored_event import StoredEvent
    from shared.storage.hot.writer import WriteResult

logger = logging.getLogger("sink")
_handler: SinkHandler | None = None
_tracer: Any = None
_lock = threading.Lock()


def _store(events: Sequence[StoredEvent]) -> WriteResult:
    from shared.storage.hot.engine import get_engine
    from shared.storage.hot.writer import write_events

    return write_events(get_engine(), events)


def get_handler() -> SinkHandler:
    """The instance's handler, built on first use."""
    global _handler, _tracer
    if _handler is None:
        with _lock:
            if _handler is None:
                from sink_logic import SinkHandler

                from shared.contract.stored_check import StoredEventCheck
                from shared.observability.log import configure_logging
                from shared.observability.tracing import get_tracer, setup_tracing
                from shared.pubsub.publisher import dead_letter_sender
                from shared.settings import get_settings

                settings = get_settings()
                configure_logging(settings.telemetry_log_level)
                setup_tracing(settings)
                _tracer = get_tracer("sink")
                _handler = SinkHandler(_store, StoredEventCheck(), dead_letter_sender(settings))
    return _handler


@functions_framework.cloud_event
def sink(cloud_event: CloudEvent) -> None:
    """Store the events of one Pub/Sub message (acknowledged by returning)."""
    from shared.errors import TelemetryError
    from shared.observability.log import request_context
    from shared.observability.tracing import extract_trace_context
    from shared.pubsub.push import unwrap_push
    from shared.settings import get_settings

    handler = get_handler()
    message = unwrap_push(cloud_event.data, fallback_id=cloud_event.get("id"))
    with (
        request_context(
            project=get_settings().google_cloud_project,
            traceparent=message.attributes.get("traceparent"),
            request_id=message.message_id,
        ),
        _tracer.start_as_current_span(
            "sink.message", context=extract_trace_context(message.attributes)
        ),
    ):
        try:
            handler.handle(message)
        except Exception as exc:
            if isinstance(exc, TelemetryError) and exc.transient:
                logger.warning(
                    "message not stored, Pub/Sub will redeliver",
                    extra={"error": exc.message, "error_type": type(exc).__name__},
                )
            else:
                logger.exception("message failed unexpectedly, Pub/Sub will redeliver")
            raise


def reset() -> None:
    """Forget the handler (tests change settings between cases)."""
    global _handler
    with _lock:
        _handler = None
