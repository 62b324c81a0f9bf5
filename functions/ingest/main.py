"""Ingest: the public beacon endpoint (HTTP). Validated, sampled, pseudonymised, published.

Entry point ``ingest``. Thin: unwrap the request, call :class:`ingest_http.IngestHandler`,
map its answer to a response. The handler and its clients are built lazily on the first
request and reused (nothing connects at import). Importing this module loads the web
framework and nothing else: a new instance (Cloud Run scales to zero, and adds instances at a
peak) is listening as soon as functions-framework is; what a request needs loads with it.
"""

from __future__ import annotations

import atexit
import threading
from typing import TYPE_CHECKING, Any

import flask
import functions_framework

from shared.http import flask_response

if TYPE_CHECKING:
    from ingest_http import IngestHandler

_handler: IngestHandler | None = None
_lock = threading.Lock()


def get_handler() -> IngestHandler:
    """The instance's handler, built on first use."""
    global _handler
    if _handler is None:
        with _lock:
            if _handler is None:
                from shared.pubsub.rpc import publish_rpc

                # Connecting starts first: gRPC's own threads make the connection while the
                # rest of the request path loads and the first request is read and checked.
                publish_rpc().connect()

                from ingest_http import IngestHandler

                from shared.contract.intake import Intake
                from shared.contract.validation import EventValidator
                from shared.observability.log import configure_logging
                from shared.observability.tracing import setup_tracing
                from shared.policy.flags import RuntimeFlags
                from shared.policy.privacy import Pseudonymiser
                from shared.policy.sampling import SamplingPolicy, sample_rates
                from shared.pubsub.alerts import alert_sender
                from shared.pubsub.publisher import get_publisher
                from shared.settings import get_settings
                from shared.storage.flags_object import GcsFlagStore

                settings = get_settings()
                configure_logging(settings.telemetry_log_level)
                setup_tracing(settings)
                intake = Intake(
                    EventValidator(),
                    SamplingPolicy(sample_rates(settings)),
                    Pseudonymiser(settings.pseudonym_keys),
                )
                _handler = IngestHandler(
                    settings,
                    intake,
                    get_publisher(),
                    RuntimeFlags(settings, GcsFlagStore(settings)),
                    alert=alert_sender(settings),
                )
                atexit.register(_handler.summary.flush)  # the last totals of this instance
    return _handler


@functions_framework.http
def ingest(request: flask.Request) -> Any:
    """Accept a beacon batch (POST /v1/events or POST /)."""
    # werkzeug's headers look names up case-insensitively, which is all the handler needs.
    answer = get_handler().handle(
        request.method, request.path, request.headers, request.stream, request.remote_addr
    )
    return flask_response(answer)


def reset() -> None:
    """Forget the handler (tests change settings between cases)."""
    global _handler
    with _lock:
        _handler = None
