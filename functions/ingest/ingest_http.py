"""The ingest endpoint's logic: routes, limits and status codes of the beacon endpoint.

No web framework here: :meth:`IngestHandler.handle` takes the method, path, headers and body
stream and returns an :class:`~shared.http.Answer`. The HTTP edge (body limits, gzip, content
types, CORS) is ``shared.http``'s; validation, sampling and pseudonymisation are
``shared.contract.intake``'s; publishing is ``shared.pubsub.publisher``'s.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING

import orjson

from shared.contract.intake import Intake, IntakeResult
from shared.contract.openapi import OPENAPI_PATH, openapi_document
from shared.contract.otlp_report import OtlpTally
from shared.contract.pipeline_events import intake_events, otlp_events
from shared.errors import ContractViolation, ServiceUnavailable
from shared.http import (
    Answer,
    BodyLimits,
    Cors,
    HeaderLookup,
    RequestProblem,
    client_ip,
    lower_case_headers,
    read_body,
)
from shared.observability.alerts import AlertSend
from shared.observability.log import request_context
from shared.observability.summary import PeriodicSummary
from shared.policy.flags import RuntimeFlags
from shared.policy.rate_limits import FloodWatch, Keys, RateLimiter, Refusal, rate_limits
from shared.pubsub.publisher import EventPublisher
from shared.settings import Settings

if TYPE_CHECKING:
    from otlp_http import OtlpHandler

logger = logging.getLogger("ingest")
PATHS = frozenset({"/", "/v1/events", "/v1/events/"})
#: OTLP/HTTP trace exports (``otlp_http``, imported on the first of them: a beacon's cold
#: start never loads the protobuf messages).
OTLP_PATHS = frozenset({"/v1/traces", "/v1/traces/"})
OTLP_LOGS_PATHS = frozenset({"/v1/logs", "/v1/logs/"})
MEDIA_TYPES = frozenset({"application/json", "text/plain"})
RETRY_AFTER_S = 5


@dataclass
class IngestOutcome:
    """What one request came to: its answer, and the counts the summary log adds up."""

    answer: Answer
    bytes: int = 0
    result: IntakeResult | None = None
    messages: int = 0
    error: str | None = None
    #: Events refused by a rate limit, and the bucket that refused them (its reason).
    limited: int = 0
    limited_by: str | None = None

    def counts(self) -> dict[str, int]:
        """Counts of this request for the periodic summary (names only, never values)."""
        result = self.result
        return {
            "requests": 1,
            f"status_{self.answer.status}": 1,
            "events": (result.total if result else 0) + self.limited,
            "accepted": len(result.accepted) if result else 0,
            "sampled_out": result.sampled_out if result else 0,
            "rejected": (len(result.rejected) if result else 0) + self.limited,
            "rate_limited": self.limited,
        }

    def rejected_by_field(self) -> dict[str, int]:
        """Refused events by reason: the field that failed, or the rate limit that refused."""
        by_field = self.result.rejected_by_field() if self.result else {}
        if self.limited_by is not None:
            reason = f"rate_limit.{self.limited_by}"
            by_field = {**by_field, reason: by_field.get(reason, 0) + self.limited}
        return by_field


class RateLimited(RequestProblem):
    """A request refused by a rate limit: 429 with ``Retry-After``, its events counted."""

    def __init__(self, refusal: Refusal, events: int) -> None:
        super().__init__(
            429,
            f"rate limit ({refusal.reason}): too many events from this sender; "
            f"retry after {refusal.retry_after_s} s",
            {"Retry-After": str(refusal.retry_after_s)},
        )
        self.refusal = refusal
        self.events = events


class IngestHandler:
    """Answers beacon requests."""

    def __init__(
        self,
        settings: Settings,
        intake: Intake,
        publisher: EventPublisher,
        flags: RuntimeFlags,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        alert: AlertSend | None = None,
    ) -> None:
        self.settings = settings
        self.intake = intake
        self.publisher = publisher
        self.flags = flags
        self.clock = clock
        self.cors = Cors(
            settings.allowed_origins, "POST, OPTIONS", "Content-Type, Content-Encoding"
        )
        self.limits = BodyLimits(
            MEDIA_TYPES,
            settings.telemetry_max_body_bytes,
            settings.telemetry_max_decompressed_bytes,
        )
        self.limiter = RateLimiter(rate_limits(settings))
        self.floods = FloodWatch(settings, alert)
        self.instance = uuid.uuid4().hex[:12]
        self._openapi_json: bytes | None = None
        self.summary = PeriodicSummary(
            logger, "ingest summary", settings.telemetry_log_summary_s, on_flush=self._store_counts
        )
        self._otlp: OtlpHandler | None = None
        self.otlp_tally = OtlpTally()

    @property
    def otlp(self) -> OtlpHandler:
        """The OTLP handler, built (and its module imported) on the first trace export."""
        if self._otlp is None:
            from otlp_http import OtlpHandler

            self._otlp = OtlpHandler(
                self.settings, self.intake, self.publisher, self.flags, self.clock, self.limiter
            )
        return self._otlp

    def _openapi(self, method: str) -> Answer:
        """The API's OpenAPI document (generated once per instance)."""
        if method not in ("GET", "HEAD"):
            return Answer(405, {"error": f"method {method[:20]} is not allowed; use GET"})
        if self._openapi_json is None:
            document = openapi_document(
                self.intake.validator.registry, self.settings.telemetry_max_events
            )
            self._openapi_json = orjson.dumps(document)
        return Answer(200, None, {"Content-Type": "application/json"}, self._openapi_json)

    def _store_counts(
        self, counts: Mapping[str, int], groups: Mapping[str, Mapping[str, int]]
    ) -> None:
        """Publish the interval's intake counts as ``pipeline.intake`` events (the rejected-event
        rate's source), beside the summary log line that also holds them."""
        now = self.clock()
        events = intake_events(counts, groups.get("rejected_by_field", {}), now, self.instance)
        events += otlp_events(self.otlp_tally.take(), now, self.instance)
        self.floods.flush()
        logger.info(
            "rate limiter keys",
            extra={"keys": self.limiter.sizes(), "forgotten": self.limiter.forgotten()},
        )
        self.publisher.publish(events, "pipeline")

    def handle(
        self,
        method: str,
        path: str,
        headers: HeaderLookup,
        stream: IO[bytes],
        peer: str | None = None,
    ) -> Answer:
        """Answer one request; never raises.

        ``headers`` is looked up with lower-case names: pass a plain dict (its keys are
        lower-cased here) or a case-insensitive mapping such as werkzeug's headers. ``peer`` is
        the connection's remote address (the sender when no proxy of ours is in front).
        """
        started = time.perf_counter()
        headers = lower_case_headers(headers)
        if path in OTLP_PATHS or path in OTLP_LOGS_PATHS:
            return self._handle_otlp(method, path, headers, stream, started)
        if path == OPENAPI_PATH:
            return self._openapi(method)
        origin = headers.get("origin")
        with request_context(
            project=self.settings.google_cloud_project,
            cloud_trace_context=headers.get("x-cloud-trace-context"),
            traceparent=headers.get("traceparent"),
            request_id=headers.get("function-execution-id"),
        ):
            try:
                outcome = self._handle(method, path, headers, stream, origin, peer)
            except RateLimited as limited:
                outcome = IngestOutcome(
                    limited.answer(),
                    error="rate limited",
                    limited=limited.events,
                    limited_by=limited.refusal.reason,
                )
            except RequestProblem as problem:
                error = problem.message if problem.status != 403 else "origin not allowed"
                outcome = IngestOutcome(problem.answer(), error=error)
            except Exception:
                logger.exception("ingest failed unexpectedly")
                answer = Answer(500, {"error": "internal error; the batch was not accepted"})
                outcome = IngestOutcome(answer, error="internal error")
            outcome.answer.headers.update(self.cors.headers(origin))
            self._account(method, outcome, started)
            return outcome.answer

    def _handle_otlp(
        self, method: str, path: str, headers: HeaderLookup, stream: IO[bytes], started: float
    ) -> Answer:
        """An OTLP trace or log export (server to server: no CORS)."""
        with request_context(
            project=self.settings.google_cloud_project,
            cloud_trace_context=headers.get("x-cloud-trace-context"),
            traceparent=headers.get("traceparent"),
            request_id=headers.get("function-execution-id"),
        ):
            from otlp_http import OtlpOutcome

            try:
                if path in OTLP_LOGS_PATHS:
                    outcome = self.otlp.handle_logs(method, headers, stream)
                else:
                    outcome = self.otlp.handle(method, headers, stream)
            except RequestProblem as problem:
                outcome = OtlpOutcome(problem.answer(), error=problem.message)
            except Exception:
                logger.exception("OTLP export failed unexpectedly")
                answer = Answer(500, {"error": "internal error; the export was not accepted"})
                outcome = OtlpOutcome(answer, error="internal error")
            self.otlp_tally.add(outcome.tally)
            self.summary.add(outcome.counts(), {"token_anomalies": outcome.token_anomalies})
            status = outcome.answer.status
            if status != 200 or outcome.rejected:
                level = logging.WARNING if status >= 500 else logging.INFO
                extra: dict[str, object] = {
                    "status": status,
                    "latency_ms": round((time.perf_counter() - started) * 1000, 2),
                    **outcome.counts(),
                }
                if outcome.error:
                    extra["error"] = outcome.error
                logger.log(level, "otlp export", extra=extra)
            return outcome.answer

    def _account(self, method: str, outcome: IngestOutcome, started: float) -> None:
        """Count the request in the summary; log it alone when it has something to say."""
        status = outcome.answer.status
        by_field = outcome.rejected_by_field()
        self.summary.add(outcome.counts(), {"rejected_by_field": by_field})
        notable = status not in (202, 429) or bool(by_field and not outcome.limited)
        level = logging.INFO if notable else logging.DEBUG
        if status >= 500:
            level = logging.ERROR if status != 503 else logging.WARNING
        if logger.isEnabledFor(level):
            extra: dict[str, object] = {
                "status": status,
                "method": method,
                "latency_ms": round((time.perf_counter() - started) * 1000, 2),
                "bytes": outcome.bytes,
                "messages": outcome.messages,
                "rejected_by_field": by_field,
                **outcome.counts(),
            }
            if outcome.error:
                extra["error"] = outcome.error
            logger.log(level, "beacon", extra=extra)

    def _handle(
        self,
        method: str,
        path: str,
        headers: HeaderLookup,
        stream: IO[bytes],
        origin: str | None,
        peer: str | None,
    ) -> IngestOutcome:
        self.cors.check(origin)
        if path not in PATHS:
            raise RequestProblem(404, f"no endpoint at {path[:200]}; POST to /v1/events")
        if method == "OPTIONS":
            return IngestOutcome(self.cors.preflight())
        if method != "POST":
            raise RequestProblem(
                405, f"method {method[:20]} is not allowed; use POST", {"Allow": "POST, OPTIONS"}
            )
        ip = client_ip(
            headers.get("x-forwarded-for"), peer, self.settings.telemetry_trusted_proxy_hops
        )
        raw = read_body(headers, stream, self.limits)
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
        # Limits are checked once the envelope is decoded (msgspec, about a microsecond an
        # event): a refused request's events are then counted exactly, by reason.
        keys = Keys(origin=origin or "-", ip=ip, session=beacon.session_id())
        self.floods.saw(ip, len(beacon.events))
        refusal = self.limiter.admit(keys, len(beacon.events))
        if refusal is not None:
            raise RateLimited(refusal, len(beacon.events))
        received_at = self.clock()
        incident = self.flags.sampling_override(received_at)
        result = self.intake.process_beacon(beacon, received_at, incident)
        messages = 0
        if result.accepted:
            traceparent = headers.get("traceparent")
            extra = {"traceparent": traceparent} if traceparent else None
            try:
                messages = self.publisher.publish(result.accepted, "ingest", extra)
            except ServiceUnavailable as exc:
                raise RequestProblem(
                    503,
                    f"{exc.message}; nothing of this batch was accepted, retry later",
                    {"Retry-After": str(RETRY_AFTER_S)},
                ) from None
        return IngestOutcome(Answer(202, result.answer()), len(raw), result, messages)
