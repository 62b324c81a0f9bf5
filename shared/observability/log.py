"""Structured JSON logs that Cloud Logging understands.

Every line carries ``severity``, ``message``, a timestamp, and, while a request is being
handled, its request id and the trace taken from ``X-Cloud-Trace-Context`` or ``traceparent``
under the ``logging.googleapis.com/*`` keys, so Cloud Logging groups a request's lines and
links them to Cloud Trace. Request context lives in context variables, so it follows work into
asyncio tasks, and into threads started through :func:`run_with_context`.

Modules log through ``logging.getLogger(__name__)``, with fields in ``extra``; one handler on
the root logger renders every line as JSON (python-json-logger). Values of identifying or
free-form keys are replaced by ``[redacted]`` before rendering: logs never carry property values
or raw identifiers.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TextIO, TypeVar

from pythonjsonlogger.json import JsonFormatter

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
#: The request's log fields (request id, trace), set by :func:`request_context`.
_REQUEST_FIELDS: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar(
    "telemetry_log_fields", default=None
)


def _request_fields() -> Mapping[str, Any]:
    return _REQUEST_FIELDS.get() or {}


class CloudLoggingFormatter(JsonFormatter):
    """One JSON object per line, in the shape Cloud Logging reads: ``severity``, ``message``,
    ``time``, the record's ``extra`` fields and the request's, trace under
    ``logging.googleapis.com/*``; identifying keys redacted."""

    def __init__(self) -> None:
        super().__init__(
            "%(levelname)s %(message)s",
            rename_fields={"exc_info": "exception"},
            timestamp="time",
            json_default=str,
        )

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        """The record's fields, then the request's (request id, trace)."""
        super().add_fields(log_data, record, message_dict)
        for key, value in _request_fields().items():
            log_data.setdefault(key, value)
        log_data["time"] = log_data["time"].isoformat()

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        """Redact, then move level and trace to Cloud Logging's keys."""
        for key in list(log_data):
            if key.lower() in REDACTED_KEYS:
                log_data[key] = "[redacted]"
        level = str(log_data.pop("levelname", "")).lower()
        log_data["severity"] = _SEVERITY.get(level, "DEFAULT")
        log_data["message"] = str(log_data.get("message", ""))
        trace_id = log_data.pop("trace_id", None)
        span_id = log_data.pop("span_id", None)
        sampled = log_data.pop("trace_sampled", None)
        project = log_data.pop("project", None)
        if trace_id:
            log_data["logging.googleapis.com/trace"] = (
                f"projects/{project}/traces/{trace_id}" if project else trace_id
            )
            if span_id:
                log_data["logging.googleapis.com/spanId"] = span_id
            if sampled is not None:
                log_data["logging.googleapis.com/trace_sampled"] = bool(sampled)
        return log_data


def configure_logging(level: str = "INFO", stream: TextIO | None = None) -> None:
    """Route every logger to one JSON-lines handler on the root logger (idempotent)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(CloudLoggingFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_telemetry", False)]:
        root.removeHandler(old)
    handler._telemetry = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())


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
    token = _REQUEST_FIELDS.set({**_request_fields(), **values})
    try:
        yield rid
    finally:
        _REQUEST_FIELDS.reset(token)


def current_request_id() -> str | None:
    """The request id bound by :func:`request_context`, if any."""
    value = _request_fields().get("request_id")
    return str(value) if value is not None else None


def run_with_context(fn: Callable[..., T]) -> Callable[..., T]:
    """Wrap ``fn`` so that, run in another thread, it keeps the caller's request context."""
    ctx = contextvars.copy_context()

    def runner(*args: Any, **kwargs: Any) -> T:
        return ctx.run(fn, *args, **kwargs)

    return runner
