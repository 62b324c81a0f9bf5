"""``POST /v1/traces``: OTLP/HTTP trace exports whose GenAI spans become ``llm.call`` events;
``POST /v1/logs``: log exports, counted and refused, never stored.

Server to server, so no CORS: a bearer token from ``TELEMETRY_OTLP_TOKENS`` is required (none:
401, a wrong one: 403, each with a JSON error). The body is protobuf or JSON, gzip or plain,
under its own limits with the beacon's gzip-bomb guard. Every span is accounted for:

* spans without GenAI attributes, and GenAI spans that are not a model call (agents, tools),
  are counted and dropped (OTLP exporters send whole traces);
* GenAI model calls become ``llm.call`` events, validated, sampled and pseudonymised by the
  same intake as every event, and published; one that cannot be mapped or fails validation is
  rejected per OTLP's partial-success rule (``rejected_spans`` and a message naming the first
  reason) and counted in the ingest summary;
* a call whose token counts break the ledger (``shared/llm/token_rules.py``) is stored as
  sent, flagged ``token_anomaly``, and counted by invariant and source in the summary
  (``token_anomalies``).

The answer uses the request's encoding. Pub/Sub down: 503 with ``Retry-After``, which OTLP
exporters honour; nothing of the request counts as accepted.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any, Literal

import orjson

from shared.contract import otlp
from shared.contract.intake import Intake, IntakeResult, Rejection
from shared.contract.otlp_report import Row, attribute_name
from shared.errors import ContractViolation, ServiceUnavailable
from shared.http import (
    Answer,
    BodyLimits,
    HeaderLookup,
    RequestProblem,
    parse_content_type,
    read_body,
)
from shared.llm import genai
from shared.policy.flags import RuntimeFlags
from shared.policy.rate_limits import Keys, RateLimiter
from shared.pubsub.publisher import EventPublisher
from shared.settings import Settings

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
RETRY_AFTER_S = 5


@dataclass
class OtlpOutcome:
    """One export request's answer and counts (names only, for the summary log)."""

    answer: Answer
    spans: int = 0
    not_genai: int = 0
    not_model_calls: int = 0
    rejected: int = 0
    result: IntakeResult | None = None
    error: str | None = None
    #: Calls whose counts break the token ledger, by ``"<invariant> <token source>"``.
    token_anomalies: Counter[str] = field(default_factory=Counter)
    #: Log records of a ``/v1/logs`` export, none of them stored.
    log_records: int = 0
    #: What this request's exports came to per instrumentation (``otlp_report.py``).
    tally: Counter[Row] = field(default_factory=Counter)

    def counts(self) -> dict[str, int]:
        """The summary's counts of this request."""
        result = self.result
        return {
            "otlp_requests": 1,
            f"otlp_status_{self.answer.status}": 1,
            "otlp_spans": self.spans,
            "otlp_not_genai": self.not_genai,
            "otlp_not_model_calls": self.not_model_calls,
            "otlp_rejected": self.rejected,
            "otlp_accepted": len(result.accepted) if result else 0,
            "otlp_sampled_out": result.sampled_out if result else 0,
            "otlp_log_records_dropped": self.log_records,
        }


class OtlpHandler:
    """Answers OTLP trace exports."""

    def __init__(
        self,
        settings: Settings,
        intake: Intake,
        publisher: EventPublisher,
        flags: RuntimeFlags,
        clock: Callable[[], datetime],
        limiter: RateLimiter | None = None,
    ) -> None:
        self.settings = settings
        self.limiter = limiter
        self.intake = intake
        self.publisher = publisher
        self.flags = flags
        self.clock = clock
        self.tokens = tuple(t.encode() for t in settings.otlp_tokens)
        self.limits = BodyLimits(
            frozenset({PROTOBUF, JSON}),
            settings.telemetry_otlp_max_body_bytes,
            settings.telemetry_otlp_max_decompressed_bytes,
        )

    def handle(self, method: str, headers: HeaderLookup, stream: IO[bytes]) -> OtlpOutcome:
        """Answer one trace export request (``RequestProblem`` for whole-request problems)."""
        token, encoding, raw = self._read(method, headers, stream)
        try:
            if encoding == PROTOBUF:
                spans = otlp.decode_protobuf(raw, genai.wanted)
            else:
                spans = otlp.decode_json(raw, genai.wanted)
        except ContractViolation as exc:
            return OtlpOutcome(self._error(encoding, 400, exc.reason), error=exc.reason)
        if len(spans) > self.settings.telemetry_otlp_max_spans:
            message = (
                f"{len(spans)} spans is over the limit of "
                f"{self.settings.telemetry_otlp_max_spans} per request"
            )
            return OtlpOutcome(self._error(encoding, 413, message), len(spans), error=message)
        refused = self._limit(encoding, token, len(spans))
        if refused is not None:
            return refused
        return self._export(encoding, spans, headers.get("traceparent"))

    def handle_logs(self, method: str, headers: HeaderLookup, stream: IO[bytes]) -> OtlpOutcome:
        """Answer one log export request: nothing is stored, every record is counted.

        Instrumentations send message content as log events (``gen_ai.client.inference.
        operation.details`` and the older ``gen_ai.*.message`` events). Content never enters
        the pipeline, so the records are counted, not read, and the answer is OTLP's partial
        success naming them all rejected, so the exporter neither retries nor believes them
        stored.
        """
        token, encoding, raw = self._read(method, headers, stream)
        try:
            records = otlp.count_log_records(raw, encoding == PROTOBUF)
        except ContractViolation as exc:
            return OtlpOutcome(self._error(encoding, 400, exc.reason), error=exc.reason)
        total = sum(records.values())
        refused = self._limit(encoding, token, total)
        if refused is not None:
            return refused
        answer = partial_success(encoding, "logs", total, LOGS_NOT_STORED)
        outcome = OtlpOutcome(answer, log_records=total)
        for (scope, version), count in records.items():
            outcome.tally[(scope, version, "log_records", "")] += count
        return outcome

    def _read(
        self, method: str, headers: HeaderLookup, stream: IO[bytes]
    ) -> tuple[bytes, str, bytes]:
        """An export request's bearer token, encoding and body (``RequestProblem`` for a
        request that cannot be one)."""
        if method != "POST":
            raise RequestProblem(
                405, f"method {method[:20]} is not allowed; use POST", {"Allow": "POST"}
            )
        token = self._authorise(headers.get("authorization"))
        encoding, _ = parse_content_type(headers.get("content-type"))
        return token, encoding, read_body(headers, stream, self.limits)

    def _limit(self, encoding: str, token: bytes, items: int) -> OtlpOutcome | None:
        """The 429 answer when the token's bucket cannot take ``items`` (spans or records)."""
        if self.limiter is None:
            return None
        # Per token (its digest: the token itself is a secret).
        refusal = self.limiter.admit(Keys(token=_token_key(token)), items)
        if refusal is None:
            return None
        wait = str(refusal.retry_after_s)
        message = f"rate limit ({refusal.reason}): retry after {wait} s"
        answer = self._error(encoding, 429, message, {"Retry-After": wait})
        return OtlpOutcome(answer, items, error="rate limited")

    def _authorise(self, header: str | None) -> bytes:
        """The request's bearer token, when it is one this deployment accepts."""
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise RequestProblem(
                401,
                "an OTLP export needs Authorization: Bearer <token>, "
                "a token of TELEMETRY_OTLP_TOKENS",
                {"WWW-Authenticate": 'Bearer realm="otlp"'},
            )
        given = token.strip().encode()
        if not any(hmac.compare_digest(given, known) for known in self.tokens):
            raise RequestProblem(403, "the bearer token is not one this deployment accepts")
        return given

    def _export(
        self, encoding: str, spans: list[otlp.SpanRecord], traceparent: str | None
    ) -> OtlpOutcome:
        outcome = OtlpOutcome(Answer(200, None), spans=len(spans))
        tally = outcome.tally
        events: list[Any] = []
        scope_of: dict[str, tuple[str, str]] = {}  # each call's event id: its span's scope
        reasons: list[str] = []
        for span in spans:
            scope = (span.scope_name, span.scope_version)
            tally[(*scope, "spans", "")] += 1
            for key in span.dropped:
                tally[(*scope, "dropped_attribute", attribute_name(key))] += 1
            if span.events:
                tally[(*scope, "span_events", "")] += span.events
            if not genai.is_genai(span):
                outcome.not_genai += 1
                tally[(*scope, "not_genai", "")] += 1
                continue
            if not genai.is_model_call(span):
                outcome.not_model_calls += 1
                tally[(*scope, "not_model_call", "")] += 1
                continue
            try:
                event = genai.to_llm_call(span)
            except ContractViolation as exc:
                reasons.append(f"span {span.span_id}: {exc.reason}")
                tally[(*scope, "refused", exc.field or "span")] += 1
                continue
            events.append(event)
            scope_of[event["event_id"]] = scope
            anomaly = event["props"].get("token_anomaly")
            if anomaly is not None:
                outcome.token_anomalies[f"{anomaly} {event['props']['token_source']}"] += 1
                tally[(*scope, "token_anomaly", anomaly)] += 1
        received_at = self.clock()
        incident = self.flags.sampling_override(received_at)
        if events:
            # The beacon's own fast path (msgspec types compiled from the registry), the same
            # rules as jsonschema-rs: the events are re-read as a beacon body.
            beacon = self.intake.read_beacon(orjson.dumps({"context": {}, "events": events}))
            result = self.intake.process_beacon(beacon, received_at, incident)
        else:  # nothing to store: no GenAI call in the export, or none that maps
            result = self.intake.process_events([], {}, received_at, incident)
        reasons += [_reason(r) for r in result.rejected]
        for rejection in result.rejected:
            scope = scope_of.get(rejection.event_id or "", ("", ""))
            tally[(*scope, "refused", rejection.field or "event")] += 1
        calls = Counter(scope_of[e.event_id] for e in result.accepted if e.event_id in scope_of)
        for scope, count in calls.items():
            tally[(*scope, "calls", "")] += count
        outcome.result = result
        outcome.rejected = len(reasons)
        if result.accepted:
            extra = {"traceparent": traceparent} if traceparent else None
            try:
                self.publisher.publish(result.accepted, "otlp", extra)
            except ServiceUnavailable as exc:
                message = f"{exc.message}; nothing of this export was accepted, retry later"
                outcome.answer = self._error(
                    encoding, 503, message, {"Retry-After": str(RETRY_AFTER_S)}
                )
                outcome.error = message
                return outcome
        outcome.answer = partial_success(
            encoding, "traces", len(reasons), reasons[0] if reasons else ""
        )
        return outcome

    @staticmethod
    def _error(
        encoding: str, status: int, message: str, headers: dict[str, str] | None = None
    ) -> Answer:
        """An error in the request's encoding: google.rpc.Status for protobuf, else JSON."""
        if encoding == PROTOBUF:
            from google.rpc.status_pb2 import Status

            code = {400: 3, 413: 8, 429: 8, 503: 14}.get(status, 2)
            body = Status(code=code, message=message).SerializeToString()
            return Answer(status, None, {**(headers or {}), "Content-Type": PROTOBUF}, body)
        return Answer(status, {"error": message}, dict(headers or {}))


#: Why a log export's records are all refused (the partial-success message).
LOGS_NOT_STORED = (
    "log records are not stored: message content stays out of telemetry (send GenAI spans to"
    " /v1/traces)"
)


def partial_success(
    encoding: str, signal: Literal["traces", "logs"], rejected: int, message: str
) -> Answer:
    """OTLP's answer to an export of which ``rejected`` items (spans, log records) were
    refused, in the request's encoding."""
    if encoding == PROTOBUF:
        response: Any
        if signal == "traces":
            from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
                ExportTraceServiceResponse,
            )

            response = ExportTraceServiceResponse()
            if rejected:
                response.partial_success.rejected_spans = rejected
        else:
            from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
                ExportLogsServiceResponse,
            )

            response = ExportLogsServiceResponse()
            if rejected:
                response.partial_success.rejected_log_records = rejected
        if rejected:
            response.partial_success.error_message = message
        return Answer(200, None, {"Content-Type": PROTOBUF}, response.SerializeToString())
    partial: dict[str, Any] = {}
    if rejected:
        key = "rejectedSpans" if signal == "traces" else "rejectedLogRecords"
        partial = {key: rejected, "errorMessage": message}
    return Answer(200, {"partialSuccess": partial})


def _token_key(token: bytes) -> str:
    """A token's bucket key: its digest, so the limiter never holds the secret."""
    return hashlib.sha256(token).hexdigest()[:32]


def _reason(rejection: Rejection) -> str:
    """A validation refusal, naming its span by the event id it was given."""
    return (
        f"event {rejection.event_id}: {rejection.reason}"
        if rejection.event_id
        else rejection.reason
    )
