"""``track_api_call``: one ``llm.call`` event and one OpenTelemetry span per LLM call.

The wrapped call is never changed: same signature (``functools.wraps``), same return value,
same exception, same stream (a returned stream is proxied, attributes and context-manager use
pass through). Recording is cheap on the caller's thread (a timestamp, a context lookup, a
queue append); the event itself, with its cost, is built on the background sender. If
telemetry fails, the call is not affected and the failure is counted.
"""

from __future__ import annotations

import asyncio
import collections.abc
import functools
import inspect
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar, cast

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from shared.llm.pricing import TOKEN_KINDS, Usage, cost_props
from telemetry_client.context import CallRecord, _enter_call, _exit_call, current_ids
from telemetry_client.usage import extract_usage, merge_usage

P = ParamSpec("P")
R = TypeVar("R")
logger = logging.getLogger("telemetry_client")
_tracer = trace.get_tracer("telemetry_client")
_warned_models: set[tuple[str, str]] = set()
DEFAULT_SESSION = "backend"


def _status_of(error: BaseException | None) -> tuple[str, str | None]:
    if error is None:
        return "ok", None
    name = type(error).__name__
    if isinstance(error, (TimeoutError, asyncio.TimeoutError)) or "Timeout" in name:
        return "timeout", name[:128]
    return "error", name[:128]


def _usage_of(record: CallRecord) -> Usage:
    u = record.usage
    tokens = {kind: int(u.get(kind, 0)) for kind in TOKEN_KINDS}
    return Usage(**tokens, audio_seconds=float(u.get("audio_seconds", 0.0)))


def _cost_props(record: CallRecord) -> dict[str, Any]:
    props = cost_props(record.provider, record.model, _usage_of(record))
    if props["cost_usd"] is None:
        key = (record.provider, record.model)
        if key not in _warned_models:
            _warned_models.add(key)
            logger.warning(
                "no price for model", extra={"provider": record.provider, "model": record.model}
            )
    return props


class _Tracked:
    """The bookkeeping of one call, from start to finish."""

    __slots__ = ("_finished", "_token", "client", "record", "span", "start", "started_at")

    def __init__(self, client: Any, provider: str, model: str, operation: str, kind: str) -> None:
        self.client = client
        self.record = CallRecord(provider, model, operation)
        self.started_at = time.time()
        self.start = time.perf_counter()
        self.span = _tracer.start_span(
            f"{kind} {model}",
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": kind,
                "gen_ai.system": provider,
                "gen_ai.provider.name": provider,
                "gen_ai.request.model": model,
                "app.operation": operation,
            },
        )
        self._token: Any = _enter_call(self.record)
        self._finished = False

    def detach(self) -> None:
        """Leave the call's context (the stream, if any, is still being consumed)."""
        if self._token is not None:
            _exit_call(self._token)
            self._token = None

    def observe(self, item: Any) -> None:
        """Read usage from a response or a stream chunk."""
        try:
            found = extract_usage(item)
            if found:
                merge_usage(self.record.usage, found)
        except Exception:
            self.client.stats.telemetry_errors += 1

    def first_chunk(self) -> None:
        if self.record.first_chunk_at is None:
            self.record.first_chunk_at = time.perf_counter()
            self.record.streamed = True

    def finish(self, error: BaseException | None = None) -> None:
        """Record the outcome once; never raises."""
        if self._finished:
            return
        self._finished = True
        self.detach()
        try:
            latency_ms = (time.perf_counter() - self.start) * 1000
            status, error_type = _status_of(error)
            record = self.record
            ttfc = (
                (record.first_chunk_at - self.start) * 1000
                if record.first_chunk_at is not None
                else None
            )
            conversation_id, session_id, user_id = current_ids()
            started_at = self.started_at
            self._end_span(status, error, latency_ms)

            def build() -> dict[str, Any]:
                props: dict[str, Any] = {
                    "provider": record.provider,
                    "model": record.model[:128],
                    "operation": record.operation,
                    "latency_ms": round(min(latency_ms, 3_600_000.0), 3),
                    "status": status,
                    "retry_count": min(record.retry_count, 1000),
                    "fallback_used": record.fallback_used,
                    "streamed": record.streamed,
                }
                if ttfc is not None:
                    props["time_to_first_chunk_ms"] = round(ttfc, 3)
                if error_type:
                    props["error_type"] = error_type
                for key in TOKEN_KINDS:
                    if key in record.usage:
                        props[key] = int(record.usage[key])
                if record.usage.get("audio_seconds"):
                    props["audio_seconds"] = float(record.usage["audio_seconds"])
                props.update(_cost_props(record))
                event: dict[str, Any] = {
                    "event_id": str(uuid.uuid4()),
                    "name": "llm.call",
                    "version": 1,
                    "ts": datetime.fromtimestamp(started_at, UTC).isoformat(),
                    "session_id": session_id or DEFAULT_SESSION,
                    "props": props,
                }
                if conversation_id:
                    event["conversation_id"] = conversation_id
                if user_id:
                    event["user_id"] = user_id
                return event

            self.client.enqueue(build)
        except Exception:
            self.client.stats.telemetry_errors += 1

    def _end_span(self, status: str, error: BaseException | None, latency_ms: float) -> None:
        span = self.span
        if not span.is_recording():
            span.end()
            return
        record = self.record
        usage = record.usage
        prompt = sum(
            int(usage.get(k, 0))
            for k in ("input_tokens", "cached_input_tokens", "cache_write_tokens")
        )
        output = int(usage.get("output_tokens", 0)) + int(usage.get("reasoning_tokens", 0))
        cost = _cost_props(record)
        span.set_attributes(
            {
                "gen_ai.response.model": record.model,
                "gen_ai.usage.input_tokens": prompt,
                "gen_ai.usage.output_tokens": output,
                "gen_ai.usage.cache_read.input_tokens": int(usage.get("cached_input_tokens", 0)),
                "gen_ai.usage.cache_creation.input_tokens": int(usage.get("cache_write_tokens", 0)),
                "gen_ai.usage.reasoning.output_tokens": int(usage.get("reasoning_tokens", 0)),
                "app.retry_count": record.retry_count,
                "app.fallback_used": record.fallback_used,
                "app.latency_ms": latency_ms,
                "app.price_version": cost["price_version"],
            }
        )
        if cost["cost_usd"] is not None:
            span.set_attribute("app.cost_usd", cost["cost_usd"])
        if error is not None:
            span.set_attribute("error.type", type(error).__name__)
            span.set_status(Status(StatusCode.ERROR, status))
        span.end()


class _TrackedStream(collections.abc.Iterator):  # type: ignore[type-arg]
    """A returned stream, passed through chunk by chunk; finishes the call when it ends."""

    def __init__(self, inner: Any, tracked: _Tracked) -> None:
        self._inner = inner
        self._iter = iter(inner)
        self._tracked = tracked

    def __next__(self) -> Any:
        try:
            item = next(self._iter)
        except StopIteration:
            self._tracked.finish()
            raise
        except BaseException as exc:
            self._tracked.finish(exc)
            raise
        self._tracked.first_chunk()
        self._tracked.observe(item)
        return item

    def __iter__(self) -> _TrackedStream:
        return self

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __enter__(self) -> _TrackedStream:
        if hasattr(self._inner, "__enter__"):
            self._inner.__enter__()
        return self

    def __exit__(self, *exc: Any) -> Any:
        try:
            if hasattr(self._inner, "__exit__"):
                return self._inner.__exit__(*exc)
            return None
        finally:
            self._tracked.finish(exc[1] if exc and exc[1] else None)

    def close(self) -> None:
        try:
            if hasattr(self._inner, "close"):
                self._inner.close()
        finally:
            self._tracked.finish()


def _is_stream(result: Any) -> bool:
    return isinstance(result, collections.abc.Iterator) and not isinstance(
        result, (str, bytes, dict)
    )


def track_api_call(
    provider: str,
    model: str,
    operation: str,
    *,
    kind: str = "chat",
    client: Any = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Record every call of the decorated function as an ``llm.call`` event and a span.

    Works on plain and ``async`` functions, generator and async generator functions, and on
    functions that return a stream (an iterator). Inside the call, ``current_call()`` gives
    the record, to add retries, a fallback or usage that the response does not carry.
    """

    def decorator(fn: Callable[P, R]) -> Callable[P, R]:
        def tracker() -> _Tracked:
            from telemetry_client import get_client

            return _Tracked(client or get_client(), provider, model, operation, kind)

        if inspect.isasyncgenfunction(fn):

            @functools.wraps(fn)
            async def agen_wrapper(*args: Any, **kwargs: Any) -> Any:
                tracked = tracker()
                error: BaseException | None = None
                try:
                    async for item in fn(*args, **kwargs):
                        tracked.first_chunk()
                        tracked.observe(item)
                        yield item
                except BaseException as exc:
                    error = exc
                    raise
                finally:
                    tracked.finish(error if not isinstance(error, GeneratorExit) else None)

            return cast(Callable[P, R], agen_wrapper)

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                tracked = tracker()
                try:
                    result = await fn(*args, **kwargs)
                except BaseException as exc:
                    tracked.finish(exc)
                    raise
                tracked.observe(result)
                tracked.finish()
                return result

            return cast(Callable[P, R], async_wrapper)

        if inspect.isgeneratorfunction(fn):

            @functools.wraps(fn)
            def gen_wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
                tracked = tracker()
                error: BaseException | None = None
                try:
                    for item in fn(*args, **kwargs):
                        tracked.first_chunk()
                        tracked.observe(item)
                        yield item
                except BaseException as exc:
                    error = exc
                    raise
                finally:
                    tracked.finish(error if not isinstance(error, GeneratorExit) else None)

            return cast(Callable[P, R], gen_wrapper)

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            tracked = tracker()
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                tracked.finish(exc)
                raise
            if _is_stream(result):
                tracked.detach()
                return cast(R, _TrackedStream(result, tracked))
            tracked.observe(result)
            tracked.finish()
            return result

        return wrapper

    return decorator


class track_call(AbstractContextManager["CallRecord"], AbstractAsyncContextManager["CallRecord"]):
    """The same record as :func:`track_api_call`, for code that is not one function.

    ``with track_call("openai", "gpt-4o", "summarise") as call: ... call.set_usage(...)``;
    ``observe(response)`` reads usage from a response object. Works with ``async with`` too.
    """

    def __init__(
        self, provider: str, model: str, operation: str, *, kind: str = "chat", client: Any = None
    ) -> None:
        self._args = (provider, model, operation, kind)
        self._client = client
        self._tracked: _Tracked | None = None

    def __enter__(self) -> CallRecord:
        from telemetry_client import get_client

        provider, model, operation, kind = self._args
        self._tracked = _Tracked(self._client or get_client(), provider, model, operation, kind)
        return self._tracked.record

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if self._tracked is not None:
            self._tracked.finish(exc)

    async def __aenter__(self) -> CallRecord:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)

    def observe(self, response: Any) -> None:
        """Read usage from a response object of a known SDK."""
        if self._tracked is not None:
            self._tracked.observe(response)
