"""Sink: Pub/Sub push (CloudEvent ``google.cloud.pubsub.topic.v1.messagePublished``) into the
hot tier, exactly one row per event.

Entry point ``sink``. Thin: unwrap the CloudEvent, call :class:`sink_logic.SinkHandler`.
Returning acknowledges the message; raising (a transient failure) answers 500 so Pub/Sub
redelivers it with backoff, and after the subscription's max delivery attempts dead-letters it.
The engine and the Pub/Sub client are built lazily on the first message and reused.
"""

from __future__ import annotations

import base64
import binascii
import threading
from collections.abc import Mapping
from typing import Any

import functions_framework
from cloudevents.http import CloudEvent
from sink_logic import SinkHandler

from shared import names
from shared.db import get_engine
from shared.log import configure_logging, request_context
from shared.publisher import topic_path
from shared.pubsub_rpc import publish_rpc
from shared.registry import default_registry
from shared.settings import get_settings
from shared.tracing import extract_trace_context, get_tracer, setup_tracing

_handler: SinkHandler | None = None
_lock = threading.Lock()
_tracer = get_tracer("sink")


def get_handler() -> SinkHandler:
    """The instance's handler, built on first use."""
    global _handler
    if _handler is None:
        with _lock:
            if _handler is None:
                settings = get_settings()
                configure_logging(settings.telemetry_log_level)
                setup_tracing(settings)
                dlq = topic_path(settings, names.TOPIC_DLQ)

                def dead_letter(data: bytes, attributes: Mapping[str, str]) -> None:
                    publish_rpc().send(
                        dlq,
                        [(data, attributes)],
                        settings.telemetry_publish_timeout_s,
                    )

                _handler = SinkHandler(get_engine, default_registry(), dead_letter)
    return _handler


def unwrap(cloud_event: CloudEvent) -> tuple[bytes, dict[str, str], str | None]:
    """``(data, attributes, message id)`` of a Pub/Sub CloudEvent; attributes may be absent."""
    payload: Any = cloud_event.data if isinstance(cloud_event.data, dict) else {}
    message = payload.get("message") or {}
    encoded = message.get("data") or ""
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError, TypeError):
        data = b"\x00not-base64"  # dead-lettered by the handler as undecodable
    attributes = message.get("attributes") or {}
    message_id = message.get("messageId") or message.get("message_id") or cloud_event.get("id")
    return data, {str(k): str(v) for k, v in attributes.items()}, message_id


@functions_framework.cloud_event
def sink(cloud_event: CloudEvent) -> None:
    """Store the events of one Pub/Sub message (acknowledged by returning)."""
    data, attributes, message_id = unwrap(cloud_event)
    with (
        request_context(
            project=get_settings().google_cloud_project,
            traceparent=attributes.get("traceparent"),
            request_id=message_id,
        ),
        _tracer.start_as_current_span("sink.message", context=extract_trace_context(attributes)),
    ):
        get_handler().handle_message(data, attributes, message_id)


def reset() -> None:
    """Forget the handler (tests change settings between cases)."""
    global _handler
    with _lock:
        _handler = None
