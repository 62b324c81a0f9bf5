"""OpenTelemetry GenAI spans as ``llm.call`` events: the same rows as ``track_api_call`` writes.

Reads the current semantic conventions and the names still in use beside them:

* provider: ``gen_ai.provider.name``, the deprecated ``gen_ai.system``, OpenInference's
  ``llm.provider`` / ``llm.system``;
* model: ``gen_ai.response.model`` when present, else ``gen_ai.request.model`` (OpenInference:
  ``llm.model_name``);
* tokens: ``gen_ai.usage.input_tokens`` / ``output_tokens`` (older: ``prompt_tokens`` /
  ``completion_tokens``), ``gen_ai.usage.cache_read.input_tokens``,
  ``cache_write.input_tokens`` (and ``cache_creation.input_tokens``, the name it replaces),
  ``reasoning.output_tokens``, each also in its older flat spelling
  (``cache_read_input_tokens``), and OpenInference's ``llm.token_count.*``. Unknown
  ``gen_ai.usage.*`` keys are ignored, never a reason to lose the span;
* time to first chunk: ``gen_ai.response.time_to_first_chunk`` (seconds), for streams.

How a span's counts are read depends on the instrumentation that sent it (its scope), and the
result must balance: see ``token_rules.py``. Each token is then priced once at its own rate.
"""

from __future__ import annotations

import functools
import hashlib
import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from shared.contract.otlp import STATUS_ERROR, SpanRecord, Wanted
from shared.errors import ContractViolation
from shared.llm.pricing import TOKEN_KINDS, Usage, cost_props
from shared.llm.token_rules import SentTokens, TokenAnomaly, read_tokens, rule_for

#: Event ids are uuid5(this, trace id + span id): an exporter's retry maps to the same event.
EVENT_ID_NAMESPACE = uuid.UUID("6f1c1e52-4a43-4d47-9d1e-5e0bd9d0c7a1")
#: The ``llm.call`` version spans become (the first with ``token_source`` and
#: ``token_anomaly``).
LLM_CALL_VERSION = 2
#: Largest latency an ``llm.call`` holds (the registry's bound).
MAX_LATENCY_MS = 3_600_000.0

_PROVIDER = ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")
_MODEL = ("gen_ai.response.model", "gen_ai.request.model", "llm.model_name")
_TOKENS: dict[str, tuple[str, ...]] = {
    "input": (
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.prompt_tokens",
        "llm.token_count.prompt",
    ),
    "output": (
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.completion_tokens",
        "llm.token_count.completion",
    ),
    "cache_read": (
        "gen_ai.usage.cache_read.input_tokens",
        "gen_ai.usage.cache_read_input_tokens",
        "llm.token_count.prompt_details.cache_read",
    ),
    "cache_write": (
        "gen_ai.usage.cache_write.input_tokens",
        "gen_ai.usage.cache_write_input_tokens",
        "gen_ai.usage.cache_creation.input_tokens",
        "gen_ai.usage.cache_creation_input_tokens",
        "llm.token_count.prompt_details.cache_write",
    ),
    "reasoning": (
        "gen_ai.usage.reasoning.output_tokens",
        "gen_ai.usage.reasoning_tokens",
        "llm.token_count.completion_details.reasoning",
    ),
}
_SINGLE_KEYS = frozenset(
    (
        *_PROVIDER,
        *_MODEL,
        "gen_ai.operation.name",
        "gen_ai.conversation.id",
        "gen_ai.request.stream",
        "gen_ai.response.time_to_first_chunk",
        "llm.is_streaming",
        "openinference.span.kind",
        "error.type",
        "session.id",
        "user.id",
        "service.version",
    )
)
#: Operations that are not a model call (an agent or a tool): counted, not stored.
NOT_MODEL_CALLS = frozenset({"execute_tool", "create_agent", "invoke_agent", "invoke_workflow"})
#: OpenInference span kinds that are model calls.
OPENINFERENCE_CALLS = frozenset({"LLM", "EMBEDDING"})
_NAME = re.compile(r"[^a-z0-9_.-]+")


#: The attributes the decoder decodes (message content never is).
wanted = Wanted(_SINGLE_KEYS, ("gen_ai.usage.", "llm.token_count."))


def is_genai(span: SpanRecord) -> bool:
    """Whether a span carries GenAI attributes at all."""
    return any(key.startswith(("gen_ai.", "llm.")) for key in span.attributes)


def is_model_call(span: SpanRecord) -> bool:
    """Whether a GenAI span is a call to a model (not an agent, workflow or tool span)."""
    attributes = span.attributes
    operation = attributes.get("gen_ai.operation.name")
    if isinstance(operation, str) and operation in NOT_MODEL_CALLS:
        return False
    kind = attributes.get("openinference.span.kind")
    return not (isinstance(kind, str) and kind not in OPENINFERENCE_CALLS)


_NAMESPACE_BYTES = EVENT_ID_NAMESPACE.bytes


def event_id(span: SpanRecord) -> str:
    """The span's event id, the same for every export of it: RFC 4122 uuid5 of (trace id,
    span id), equal to ``uuid.uuid5(EVENT_ID_NAMESPACE, …)`` (tested) without its overhead."""
    digest = bytearray(
        hashlib.sha1(  # noqa: S324 - uuid5 is SHA-1 by definition; not a security use
            _NAMESPACE_BYTES + (span.trace_id + span.span_id).encode()
        ).digest()[:16]
    )
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _first(attributes: dict[str, Any], keys: Sequence[str]) -> Any:
    for key in keys:
        value = attributes.get(key)
        if value is not None and value != "":
            return value
    return None


def _count(attributes: dict[str, Any], kind: str) -> int:
    for key in _TOKENS[kind]:
        value = attributes.get(key)
        if value is None:
            continue
        if isinstance(value, bool):
            raise ContractViolation(f"{key}: a token count must be an integer, not a boolean", key)
        if isinstance(value, str):
            text = value
            try:
                value = int(text)
            except ValueError:
                raise ContractViolation(f"{key}: a string that is not a token count", key) from None
        if isinstance(value, float):
            if not value.is_integer():
                raise ContractViolation(f"{key}: {value} is not a whole number of tokens", key)
            value = int(value)
        if not isinstance(value, int) or value < 0:
            raise ContractViolation(f"{key}: a token count must be a non-negative integer", key)
        return value
    return 0


def sent_tokens(attributes: dict[str, Any]) -> SentTokens:
    """The span's token counts as its source sent them."""
    return SentTokens(
        input=_count(attributes, "input"),
        output=_count(attributes, "output"),
        cache_read=_count(attributes, "cache_read"),
        cache_write=_count(attributes, "cache_write"),
        reasoning=_count(attributes, "reasoning"),
    )


def token_source(span: SpanRecord) -> str:
    """The instrumentation that counted the span's tokens: ``scope`` or ``scope@version``."""
    name = span.scope_name[:120] or "unknown"
    return f"{name}@{span.scope_version[:32]}" if span.scope_version else name


def usage_of(span: SpanRecord, provider: str) -> tuple[Usage, TokenAnomaly | None]:
    """The span's tokens in our kinds, read by its source's rule, and the invariant its
    counts break, if any."""
    rule = rule_for(span.scope_name, span.scope_version, provider)
    return read_tokens(sent_tokens(span.attributes), rule)


def _first_chunk_ms(attributes: dict[str, Any]) -> float | None:
    seconds = attributes.get("gen_ai.response.time_to_first_chunk")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        return None
    if not 0 <= seconds * 1000 <= MAX_LATENCY_MS:
        return None
    return round(seconds * 1000, 3)


@functools.lru_cache(maxsize=1024)
def _name(value: Any, limit: int) -> str:
    return _NAME.sub("_", str(value).strip().lower())[:limit] or "unknown"


def _text(value: Any, limit: int) -> str | None:
    if value is None or value == "":
        return None
    return str(value)[:limit]


def to_llm_call(span: SpanRecord) -> dict[str, Any]:
    """The ``llm.call`` event of a GenAI model-call span (ingest validates it as any event);
    :class:`ContractViolation` names what makes the span unusable."""
    attributes = span.attributes
    model = _first(attributes, _MODEL)
    if model is None:
        raise ContractViolation(
            "a GenAI span without a model (gen_ai.request.model or gen_ai.response.model)",
            "gen_ai.request.model",
        )
    if span.end_ns < span.start_ns:
        raise ContractViolation("the span ends before it starts", "endTimeUnixNano")
    if span.start_ns <= 0:
        raise ContractViolation("the span has no start time", "startTimeUnixNano")
    provider = _name(_first(attributes, _PROVIDER) or "unknown", 32)
    model = str(model)[:128]
    operation = _name(attributes.get("gen_ai.operation.name") or "chat", 64)
    usage, anomaly = usage_of(span, provider)
    error_type = _text(attributes.get("error.type"), 128)
    status = "ok"
    if span.status_code == STATUS_ERROR or error_type:
        status = "timeout" if error_type and "timeout" in error_type.lower() else "error"
        error_type = error_type or "error"
    streamed = _first(attributes, ("gen_ai.request.stream", "llm.is_streaming"))
    props: dict[str, Any] = {
        "provider": provider,
        "model": model,
        "operation": operation,
        "latency_ms": round(min((span.end_ns - span.start_ns) / 1e6, MAX_LATENCY_MS), 3),
        "status": status,
        "streamed": streamed is True,
    }
    if error_type and status != "ok":
        props["error_type"] = error_type
    first_chunk_ms = _first_chunk_ms(attributes)
    if first_chunk_ms is not None:
        props["time_to_first_chunk_ms"] = first_chunk_ms
    props["token_source"] = token_source(span)
    if anomaly is not None:
        props["token_anomaly"] = anomaly
    for kind in TOKEN_KINDS:
        props[kind] = getattr(usage, kind)
    started = datetime.fromtimestamp(span.start_ns / 1e9, UTC)
    props.update(cost_props(provider, model, usage, started))
    event: dict[str, Any] = {
        "event_id": event_id(span),
        "name": "llm.call",
        "version": LLM_CALL_VERSION,
        "ts": started.isoformat(),
        "session_id": _text(attributes.get("session.id"), 128) or f"trace-{span.trace_id}",
        "props": props,
    }
    for field, key, limit in (
        ("conversation_id", "gen_ai.conversation.id", 128),
        ("user_id", "user.id", 256),
        ("app_version", "service.version", 64),
    ):
        value = _text(attributes.get(key), limit)
        if value is not None:
            event[field] = value
    return event
