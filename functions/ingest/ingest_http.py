"""The ingest endpoint's logic: HTTP concerns only (limits, encodings, CORS, status codes).

No web framework here: :meth:`IngestHandler.handle` takes the method, path, headers and body
stream and returns an :class:`Answer`. Validation, sampling and pseudonymisation are
``shared.intake``'s; publishing is ``shared.publisher``'s.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

import orjson

from shared.errors import ContractViolation, ServiceUnavailable
from shared.intake import Intake
from shared.log import request_context
from shared.publisher import EventPublisher
from shared.runtime_flags import RuntimeFlags
from shared.settings import Settings

logger = logging.getLogger("ingest")
PATHS = frozenset({"/", "/v1/events", "/v1/events/"})
ALLOWED_TYPES = frozenset({"application/json", "text/plain"})
RETRY_AFTER_S = 5
_READ_CHUNK = 64 * 1024


@dataclass
class Answer:
    """What the function answers: a status, a JSON body (or none) and headers."""

    status: int
    body: dict[str, Any] | None
    headers: dict[str, str] = field(default_factory=dict)


class RequestProblem(Exception):
    """A whole-request problem, answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def read_limited(stream: IO[bytes], limit: int) -> bytes:
    """Read the body, refusing (413) as soon as it is over ``limit`` bytes."""
    chunks = []
    size = 0
    while True:
        chunk = stream.read(min(_READ_CHUNK, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise RequestProblem(413, f"body is over the limit of {limit} bytes")
    return b"".join(chunks)


def gunzip_limited(data: bytes, limit: int) -> bytes:
    """Inflate a gzip body, cut off as soon as the output passes ``limit`` (gzip bombs)."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, limit + 1)
        if len(out) > limit or inflater.unconsumed_tail:
            raise RequestProblem(413, f"decompressed body is over the limit of {limit} bytes")
        out += inflater.flush()
    except zlib.error:
        raise RequestProblem(400, "body is not valid gzip") from None
    if not inflater.eof:
        raise RequestProblem(400, "body is not valid gzip (truncated)")
    if len(out) > limit:
        raise RequestProblem(413, f"decompressed body is over the limit of {limit} bytes")
    return out


def parse_content_type(value: str | None) -> tuple[str, str | None]:
    """``(mimetype, charset)`` of a Content-Type header, lower-cased."""
    if not value:
        return "", None
    parts = [p.strip() for p in value.split(";")]
    charset = None
    for param in parts[1:]:
        key, _, val = param.partition("=")
        if key.strip().lower() == "charset":
            charset = val.strip().strip('"').lower()
    return parts[0].lower(), charset


class IngestHandler:
    """Answers beacon requests."""

    def __init__(
        self,
        settings: Settings,
        intake: Intake,
        publisher: EventPublisher,
        flags: RuntimeFlags,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.intake = intake
        self.publisher = publisher
        self.flags = flags
        self.clock = clock
        self.allowed_origins = frozenset(settings.allowed_origins)

    # -- CORS ------------------------------------------------------------------------------
    def _origin_allowed(self, origin: str) -> bool:
        return "*" in self.allowed_origins or origin in self.allowed_origins

    def _cors_headers(self, origin: str | None) -> dict[str, str]:
        if origin and self._origin_allowed(origin):
            return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
        return {"Vary": "Origin"}

    # -- entry -----------------------------------------------------------------------------
    def handle(
        self, method: str, path: str, headers: Mapping[str, str], stream: IO[bytes]
    ) -> Answer:
        """Answer one request; never raises. Header names are matched case-insensitively."""
        started = time.perf_counter()
        headers = {key.lower(): value for key, value in headers.items()}
        origin = headers.get("origin")
        with request_context(
            project=self.settings.google_cloud_project,
            cloud_trace_context=headers.get("x-cloud-trace-context"),
            traceparent=headers.get("traceparent"),
        ):
            stats: dict[str, Any] = {}
            try:
                answer = self._handle(method, path, headers, stream, origin, stats)
            except RequestProblem as problem:
                answer = Answer(problem.status, {"error": problem.message}, problem.headers)
                stats["error"] = problem.message if problem.status != 403 else "origin not allowed"
            except Exception:
                logger.exception("ingest failed unexpectedly")
                answer = Answer(500, {"error": "internal error; the batch was not accepted"})
            answer.headers.update(self._cors_headers(origin))
            logger.info(
                "beacon",
                extra={
                    "status": answer.status,
                    "method": method,
                    "latency_ms": round((time.perf_counter() - started) * 1000, 2),
                    **stats,
                },
            )
            return answer

    def _handle(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        stream: IO[bytes],
        origin: str | None,
        stats: dict[str, Any],
    ) -> Answer:
        if origin and not self._origin_allowed(origin):
            raise RequestProblem(403, f"origin {origin[:200]} is not allowed to send telemetry")
        if path not in PATHS:
            raise RequestProblem(404, f"no endpoint at {path[:200]}; POST to /v1/events")
        if method == "OPTIONS":
            return Answer(
                204,
                None,
                {
                    "Access-Control-Allow-Methods": "POST, OPTIONS",
                    "Access-Control-Allow-Headers": "Content-Type, Content-Encoding",
                    "Access-Control-Max-Age": "86400",
                },
            )
        if method != "POST":
            raise RequestProblem(
                405, f"method {method[:20]} is not allowed; use POST", {"Allow": "POST, OPTIONS"}
            )
        body, screen_nul = self._read_body(headers, stream, stats)
        events = body.get("events") if isinstance(body, dict) else None
        if isinstance(events, list) and len(events) > self.settings.telemetry_max_events:
            raise RequestProblem(
                413,
                f"{len(events)} events is over the limit of "
                f"{self.settings.telemetry_max_events} per request",
            )
        received_at = self.clock()
        incident = self.flags.sampling_override(received_at)
        try:
            result = self.intake.process_envelope(body, received_at, incident, screen_nul)
        except ContractViolation as exc:
            raise RequestProblem(400, exc.reason) from None
        stats.update(
            events=result.total,
            accepted=len(result.accepted),
            sampled_out=result.sampled_out,
            rejected=len(result.rejected),
            rejected_by_field=result.rejected_by_field(),
        )
        if result.accepted:
            extra = {"traceparent": headers["traceparent"]} if headers.get("traceparent") else None
            try:
                stats["messages"] = self.publisher.publish(result.accepted, "ingest", extra)
            except ServiceUnavailable as exc:
                raise RequestProblem(
                    503,
                    f"{exc.message}; nothing of this batch was accepted, retry later",
                    {"Retry-After": str(RETRY_AFTER_S)},
                ) from None
        return Answer(202, result.answer())

    def _read_body(
        self, headers: Mapping[str, str], stream: IO[bytes], stats: dict[str, Any]
    ) -> tuple[Any, bool]:
        mimetype, charset = parse_content_type(headers.get("content-type"))
        if mimetype not in ALLOWED_TYPES or charset not in (None, "utf-8", "utf8"):
            shown = (headers.get("content-type") or "none")[:100]
            raise RequestProblem(
                415,
                f"Content-Type {shown} is not supported; "
                "send application/json or text/plain;charset=UTF-8",
            )
        encoding = (headers.get("content-encoding") or "identity").strip().lower()
        if encoding not in ("identity", "gzip"):
            raise RequestProblem(
                415, f"Content-Encoding {encoding[:40]} is not supported; use gzip"
            )
        limit = self.settings.telemetry_max_body_bytes
        declared = headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise RequestProblem(
                413, f"body of {declared} bytes is over the limit of {limit} bytes"
            )
        raw = read_limited(stream, limit)
        stats["bytes"] = len(raw)
        if encoding == "gzip":
            raw = gunzip_limited(raw, self.settings.telemetry_max_decompressed_bytes)
        if not raw.strip():
            raise RequestProblem(400, 'body is empty; send {"events": [...]}')
        try:
            # Only a body that spells a NUL escape needs its events screened for NUL.
            return orjson.loads(raw), b"\\u0000" in raw
        except orjson.JSONDecodeError as exc:
            detail = str(exc).split(":", 1)[0]
            raise RequestProblem(400, f"body is not JSON ({detail})") from None
