"""The ingest endpoint's logic: HTTP concerns only (limits, encodings, CORS, status codes).

No web framework here: :meth:`IngestHandler.handle` takes the method, path, headers and body
stream and returns an :class:`Answer`. Validation, sampling and pseudonymisation are
``shared.intake``'s; publishing is ``shared.publisher``'s.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any, Protocol

from shared.errors import ContractViolation, ServiceUnavailable
from shared.intake import Intake
from shared.log import request_context
from shared.log_summary import PeriodicSummary
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


class HeaderLookup(Protocol):
    """What the handler needs of request headers: a look-up by lower-case name."""

    def get(self, key: str, /) -> str | None:
        """The header's value, or None."""
        ...


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
        self.summary = PeriodicSummary(logger, "ingest summary", settings.telemetry_log_summary_s)

    # -- CORS ------------------------------------------------------------------------------
    def _origin_allowed(self, origin: str) -> bool:
        return "*" in self.allowed_origins or origin in self.allowed_origins

    def _cors_headers(self, origin: str | None) -> dict[str, str]:
        if origin and self._origin_allowed(origin):
            return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
        return {"Vary": "Origin"}

    # -- entry -----------------------------------------------------------------------------
    def handle(
        self,
        method: str,
        path: str,
        headers: HeaderLookup,
        stream: IO[bytes],
    ) -> Answer:
        """Answer one request; never raises.

        ``headers`` is looked up with lower-case names: pass a plain dict (its keys are
        lower-cased here) or a case-insensitive mapping such as werkzeug's headers.
        """
        started = time.perf_counter()
        if isinstance(headers, dict):
            headers = {key.lower(): value for key, value in headers.items()}
        origin = headers.get("origin")
        with request_context(
            project=self.settings.google_cloud_project,
            cloud_trace_context=headers.get("x-cloud-trace-context"),
            traceparent=headers.get("traceparent"),
            request_id=headers.get("function-execution-id"),
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
            self._account(method, answer.status, stats, started)
            return answer

    def _account(self, method: str, status: int, stats: dict[str, Any], started: float) -> None:
        """Count the request in the summary; log it alone when it has something to say."""
        by_field = stats.pop("rejected_by_field", {})
        self.summary.add(
            {
                "requests": 1,
                f"status_{status}": 1,
                "events": stats.get("events", 0),
                "accepted": stats.get("accepted", 0),
                "sampled_out": stats.get("sampled_out", 0),
                "rejected": stats.get("rejected", 0),
            },
            {"rejected_by_field": by_field},
        )
        notable = status != 202 or stats.get("rejected")
        level = logging.INFO if notable else logging.DEBUG
        if status >= 500:
            level = logging.ERROR if status != 503 else logging.WARNING
        if logger.isEnabledFor(level):
            logger.log(
                level,
                "beacon",
                extra={
                    "status": status,
                    "method": method,
                    "latency_ms": round((time.perf_counter() - started) * 1000, 2),
                    "rejected_by_field": by_field,
                    **stats,
                },
            )

    def _handle(
        self,
        method: str,
        path: str,
        headers: HeaderLookup,
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
        raw = self._read_body(headers, stream, stats)
        try:
            beacon = self.intake.read_beacon(raw)
        except ContractViolation as exc:
            raise RequestProblem(400, exc.reason) from None
        if len(beacon.events) > self.settings.telemetry_max_events:
            raise RequestProblem(
                413,
                f"{len(beacon.events)} events is over the limit of "
                f"{self.settings.telemetry_max_events} per request",
            )
        received_at = self.clock()
        incident = self.flags.sampling_override(received_at)
        result = self.intake.process_beacon(beacon, received_at, incident)
        stats.update(
            events=result.total,
            accepted=len(result.accepted),
            sampled_out=result.sampled_out,
            rejected=len(result.rejected),
            rejected_by_field=result.rejected_by_field(),
        )
        if result.accepted:
            traceparent = headers.get("traceparent")
            extra = {"traceparent": traceparent} if traceparent else None
            try:
                stats["messages"] = self.publisher.publish(result.accepted, "ingest", extra)
            except ServiceUnavailable as exc:
                raise RequestProblem(
                    503,
                    f"{exc.message}; nothing of this batch was accepted, retry later",
                    {"Retry-After": str(RETRY_AFTER_S)},
                ) from None
        return Answer(202, result.answer())

    def _read_body(self, headers: HeaderLookup, stream: IO[bytes], stats: dict[str, Any]) -> bytes:
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
        return raw
