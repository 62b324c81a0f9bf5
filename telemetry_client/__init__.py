"""Backend instrumentation: ``track_api_call`` around LLM calls, ``emit`` for domain events.

    from telemetry_client import track_api_call, emit, call_context, flush

    @track_api_call(provider="anthropic", model="claude-sonnet-4", operation="bias_prefilter")
    def call_llm(prompt): ...

    emit("bias.flagged", {"node_id": "n-1", "bias_type": "framing", "severity": "high"},
         conversation_id="c-9")

Events are queued in memory and sent in batches by a background thread, through the same
validation, sampling and pseudonymisation as the ingest endpoint: straight to Pub/Sub, or to
``TELEMETRY_INGEST_URL`` when set. Call :func:`flush` at the end of each request on Cloud Run
(or wrap the app: :func:`flush_after`, :class:`FlushMiddleware`, :class:`AsgiFlushMiddleware`).
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import logging
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

from shared.errors import ConfigurationError, ContractViolation
from telemetry_client.archive import archive
from telemetry_client.context import (
    CallRecord,
    call_context,
    current_call,
    current_ids,
    mark_fallback,
    record_retry,
)
from telemetry_client.sender import (
    BackgroundSender,
    HttpTransport,
    SenderStats,
    Transport,
)
from telemetry_client.track import DEFAULT_SESSION, track_api_call, track_call
from telemetry_client.usage import register_usage_extractor

__all__ = [
    "AsgiFlushMiddleware",
    "CallRecord",
    "FlushMiddleware",
    "TelemetryClient",
    "archive",
    "call_context",
    "configure",
    "current_call",
    "emit",
    "flush",
    "flush_after",
    "get_client",
    "mark_fallback",
    "record_retry",
    "register_usage_extractor",
    "track_api_call",
    "track_call",
]

P = ParamSpec("P")
R = TypeVar("R")
logger = logging.getLogger("telemetry_client")


class TelemetryClient(BackgroundSender):
    """The queue and sender used by ``track_api_call`` and ``emit``."""


_client: TelemetryClient | None = None
_client_lock = threading.Lock()


def configure(
    transport: Callable[[SenderStats], Transport] | None = None,
    *,
    max_queue: int | None = None,
    batch_size: int | None = None,
    delay: float | None = None,
) -> TelemetryClient:
    """Build the process-wide client explicitly (else it is built from settings on first use)."""
    global _client
    from shared.settings import Settings

    # The variables the client reads; the pipeline's production checks are not the app's.
    settings = Settings.from_environment()
    if transport is None:
        url = settings.telemetry_ingest_url
        transport = functools.partial(HttpTransport, url) if url else _pubsub_transport()
    with _client_lock:
        old = _client
        _client = TelemetryClient(
            transport,
            max_queue=max_queue or settings.telemetry_client_queue_size,
            batch_size=batch_size or settings.telemetry_client_batch_size,
            delay=delay or settings.telemetry_client_delay_s,
            retry_s=settings.telemetry_client_retry_s,
            exit_flush_timeout=settings.telemetry_exit_flush_timeout_s,
        )
    if old is not None:
        old.shutdown(timeout=5)
    _client.start()
    return _client


def _pubsub_transport() -> Callable[[SenderStats], Transport]:
    """The Pub/Sub transport, or a clear error when the ``[pubsub]`` extra is not installed."""
    if importlib.util.find_spec("grpc") is None:
        raise ConfigurationError(
            "TELEMETRY_INGEST_URL is not set, and sending straight to Pub/Sub needs the "
            "[pubsub] extra: pip install 'telemetry-client[pubsub]'",
            ["TELEMETRY_INGEST_URL"],
        )
    from telemetry_client.pubsub import PubSubTransport

    return PubSubTransport


def get_client() -> TelemetryClient:
    """The process-wide client, built from settings on first use."""
    if _client is None:
        return configure()
    return _client


def flush(timeout: float = 5.0) -> bool:
    """Send every queued event now; True when all were handed over within ``timeout``."""
    return True if _client is None else _client.flush(timeout)


_validator: Any = None


def emit(
    name: str,
    props: dict[str, Any],
    *,
    conversation_id: str | None = None,
    session_id: str | None = None,
    user_id: str | None = None,
    version: int = 1,
) -> bool:
    """Record a domain event of the registry (``bias.flagged``, ``frame.detected``, …).

    Checked against the registry at once: an invalid event is not queued, a warning names the
    field, and False is returned. Never raises.
    """
    global _validator
    try:
        ctx_conversation, ctx_session, ctx_user = current_ids()
        event: dict[str, Any] = {
            "event_id": str(uuid.uuid4()),
            "name": name,
            "version": version,
            "ts": datetime.now(UTC).isoformat(),
            "session_id": session_id or ctx_session or DEFAULT_SESSION,
            "props": props,
        }
        if conversation_id or ctx_conversation:
            event["conversation_id"] = conversation_id or ctx_conversation
        if user_id or ctx_user:
            event["user_id"] = user_id or ctx_user
        if _validator is None:
            from shared.contract.validation import EventValidator

            _validator = EventValidator()
        _validator.validate_event(event)
    except ContractViolation as exc:
        logger.warning("emit refused an event", extra={"event_name": name, "field": exc.field})
        return False
    except Exception:
        get_client().stats.telemetry_errors += 1
        return False
    return get_client().enqueue(lambda: event)


def flush_after(fn: Callable[P, R]) -> Callable[P, R]:
    """Flush telemetry before a request handler returns (functions-framework, Flask views).

    Cloud Run throttles the CPU once the response is sent, so events still queued then would
    wait for the next request, or be lost at exit. One line: ``@flush_after`` under
    ``@functions_framework.http``.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        finally:
            flush()

    return wrapper


class FlushMiddleware:
    """WSGI middleware: ``app.wsgi_app = FlushMiddleware(app.wsgi_app)`` flushes per request."""

    def __init__(self, app: Any, timeout: float = 5.0) -> None:
        self.app = app
        self.timeout = timeout

    def __call__(self, environ: Any, start_response: Any) -> Any:
        try:
            return self.app(environ, start_response)
        finally:
            flush(self.timeout)


class AsgiFlushMiddleware:
    """ASGI middleware: flushes before the last body chunk of each HTTP response is sent."""

    def __init__(self, app: Any, timeout: float = 5.0) -> None:
        self.app = app
        self.timeout = timeout

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return

        async def send_flushing(message: Any) -> None:
            if message.get("type") == "http.response.body" and not message.get("more_body", False):
                await asyncio.to_thread(flush, self.timeout)
            await send(message)

        await self.app(scope, receive, send_flushing)
