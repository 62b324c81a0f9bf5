"""Structured JSON logs that Cloud Logging understands.

Every line carries ``severity``, ``message``, a timestamp, and, while a request is being
handled, its request id and the trace taken from ``X-Cloud-Trace-Context`` or ``traceparent``
under the ``logging.googleapis.com/*`` keys, so Cloud Logging groups a request's lines and
links them to Cloud Trace. Request context lives in context variables, so it follows work into
asyncio tasks, and into threads started through :func:`run_with_context`.

Modules log through ``logging.getLogger(__name__)`` (or structlog); both end up as the same JSON.
Values of identifying or free-form keys are replaced by ``[redacted]`` before rendering: logs
never carry property values or raw identifiers.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
import sys
import uuid
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any, TextIO, TypeVar

import structlog

T = TypeVar("T")

#: Keys whose values never reach a log line.
REDACTED_KEYS = frozenset(
    {
        "user_id",
        "user_key",
        "session_id",
        "conversation_id",
        "props",
        "properties",
        "email",
        "ip",
        "ip_address",
        "prompt",
        "completion",
        "transcript",
        "text",
        "body",
        "password",
        "secret",
        "token",
        "authorization",
        "cookie",
    }
)
_SEVERITY = {
    "debug": "DEBUG",
    "info": "INFO",
    "warning": "WARNING",
    "warn": "WARNING",
    "error": "ERROR",
    "exception": "ERROR",
    "critical": "CRITICAL",
    "fatal": "CRITICAL",
}
_CLOUD_TRACE = re.compile(r"^([0-9a-fA-F]{32})(?:/(\d+))?(?:;o=(\d))?")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_configured = False


def _redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        if key.lower() in REDACTED_KEYS:
            event_dict[key] = "[redacted]"
    return event_dict


def _cloud_logging_fields(
    _: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    level = str(event_dict.pop("level", method_name)).lower()
    event_dict["severity"] = _SEVERITY.get(level, "DEFAULT")
    event_dict["message"] = str(event_dict.pop("event", ""))
    trace_id = event_dict.pop("trace_id", None)
    span_id = event_dict.pop("span_id", None)
    sampled = event_dict.pop("trace_sampled", None)
    project = event_dict.pop("project", None)
    if trace_id:
        event_dict["logging.googleapis.com/trace"] = (
            f"projects/{project}/traces/{trace_id}" if project else trace_id
        )
        if span_id:
            event_dict["logging.googleapis.com/spanId"] = span_id
        if sampled is not None:
            event_dict["logging.googleapis.com/trace_sampled"] = bool(sampled)
    return event_dict


def configure_logging(level: str = "INFO", stream: TextIO | None = None) -> None:
    """Route structlog and stdlib logging to one JSON-lines handler (idempotent)."""
    global _configured
    shared_processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
        _redact,
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared_processors, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _redact,
            _cloud_logging_fields,
            structlog.processors.JSONRenderer(),
        ],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_telemetry", False)]:
        root.removeHandler(old)
    handler._telemetry = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    if not _configured:
        structlog.configure(
            processors=[
                *shared_processors,
                structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
            ],
            logger_factory=structlog.stdlib.LoggerFactory(),
            wrapper_class=structlog.stdlib.BoundLogger,
            cache_logger_on_first_use=True,
        )
    _configured = True


def parse_trace_header(
    cloud_trace_context: str | None, traceparent: str | None
) -> tuple[str, str | None, bool | None] | None:
    """``(trace_id, span_id, sampled)`` from either header, W3C ``traceparent`` first."""
    if traceparent:
        match = _TRACEPARENT.match(traceparent.strip().lower())
        if match and match.group(1) != "0" * 32:
            return match.group(1), match.group(2), bool(int(match.group(3), 16) & 1)
    if cloud_trace_context:
        match = _CLOUD_TRACE.match(cloud_trace_context.strip())
        if match:
            span = format(int(match.group(2)), "016x") if match.group(2) else None
            sampled = None if match.group(3) is None else match.group(3) == "1"
            return match.group(1).lower(), span, sampled
    return None


@contextlib.contextmanager
def request_context(
    *,
    project: str | None = None,
    cloud_trace_context: str | None = None,
    traceparent: str | None = None,
    request_id: str | None = None,
) -> Iterator[str]:
    """Bind a request id and trace to every log line written inside the block."""
    rid = request_id or uuid.uuid4().hex
    values: dict[str, Any] = {"request_id": rid}
    trace = parse_trace_header(cloud_trace_context, traceparent)
    if trace:
        values["trace_id"], values["span_id"], values["trace_sampled"] = trace
        if project:
            values["project"] = project
    tokens = structlog.contextvars.bind_contextvars(**values)
    try:
        yield rid
    finally:
        structlog.contextvars.reset_contextvars(**tokens)


def current_request_id() -> str | None:
    """The request id bound by :func:`request_context`, if any."""
    value = structlog.contextvars.get_contextvars().get("request_id")
    return str(value) if value is not None else None


def run_with_context(fn: Callable[..., T]) -> Callable[..., T]:
    """Wrap ``fn`` so that, run in another thread, it keeps the caller's request context."""
    ctx = contextvars.copy_context()

    def runner(*args: Any, **kwargs: Any) -> T:
        return ctx.run(fn, *args, **kwargs)

    return runner
