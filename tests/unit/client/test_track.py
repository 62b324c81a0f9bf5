"""track_api_call and emit, on every call shape, with an in-memory transport."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tenacity import retry, stop_after_attempt, wait_none

import telemetry_client as tc
from shared.contract.validation import EventValidator
from telemetry_client import track as track_module
from telemetry_client.sender import SenderStats


class Memory:
    sent: list[dict[str, Any]]

    def __init__(self, stats: SenderStats) -> None:
        self.sent = Memory.sent

    def send(self, events: list[dict[str, Any]]) -> None:
        self.sent.extend(events)


@pytest.fixture
def sent() -> Iterator[list[dict[str, Any]]]:
    Memory.sent = []
    tc.configure(Memory, delay=0.01)
    yield Memory.sent
    tc.get_client().shutdown(1)


def calls(sent: list[dict[str, Any]]) -> list[dict[str, Any]]:
    assert tc.flush(5)
    return [e for e in sent if e["name"] == "llm.call"]


def anthropic_response(**usage: int) -> Any:
    return SimpleNamespace(content="hi", usage=SimpleNamespace(**usage))


def test_sync_call_records_usage_cost_and_keeps_the_result(sent) -> None:
    @tc.track_api_call(provider="anthropic", model="claude-sonnet-4", operation="bias_prefilter")
    def call_llm(prompt: str, *, temperature: float = 0.0) -> Any:
        """Docstring kept."""
        return anthropic_response(
            input_tokens=1000,
            output_tokens=200,
            cache_read_input_tokens=4000,
            cache_creation_input_tokens=500,
        )

    response = call_llm("x", temperature=0.5)
    assert response.content == "hi"
    assert call_llm.__name__ == "call_llm" and call_llm.__doc__ == "Docstring kept."
    assert list(inspect.signature(call_llm).parameters) == ["prompt", "temperature"]
    (event,) = calls(sent)
    props = event["props"]
    assert props["status"] == "ok" and props["provider"] == "anthropic"
    assert (props["input_tokens"], props["output_tokens"]) == (1000, 200)
    assert (props["cached_input_tokens"], props["cache_write_tokens"]) == (4000, 500)
    # 1000*3 + 200*15 + 4000*0.30 + 500*3.75 per million, each kind priced once
    assert props["cost_usd"] == pytest.approx(0.009075)
    assert props["price_version"] == "2026-11-01"
    EventValidator().validate_event(event)


def test_exception_is_reraised_unchanged_and_recorded(sent) -> None:
    class ProviderDown(RuntimeError):
        pass

    @tc.track_api_call(provider="openai", model="gpt-4o", operation="summarise")
    def call_llm() -> None:
        raise ProviderDown("503")

    with pytest.raises(ProviderDown, match="503"):
        call_llm()
    (event,) = calls(sent)
    assert event["props"]["status"] == "error" and event["props"]["error_type"] == "ProviderDown"


def test_timeouts_are_their_own_status(sent) -> None:
    @tc.track_api_call(provider="openai", model="gpt-4o", operation="summarise")
    async def slow() -> None:
        await asyncio.wait_for(asyncio.sleep(1), timeout=0.01)

    with pytest.raises((TimeoutError, asyncio.TimeoutError)):
        asyncio.run(slow())
    (event,) = calls(sent)
    assert event["props"]["status"] == "timeout"


def test_async_call(sent) -> None:
    @tc.track_api_call(provider="openai", model="gpt-4o-mini", operation="summarise")
    async def call_llm(x: int) -> Any:
        await asyncio.sleep(0)
        return {
            "usage": {
                "prompt_tokens": 1200,
                "completion_tokens": 300,
                "prompt_tokens_details": {"cached_tokens": 1000},
            }
        }

    assert asyncio.run(call_llm(1))["usage"]["prompt_tokens"] == 1200
    assert inspect.iscoroutinefunction(call_llm)
    (event,) = calls(sent)
    props = event["props"]
    # OpenAI counts cached tokens inside prompt_tokens: not double-counted here
    assert (props["input_tokens"], props["cached_input_tokens"], props["output_tokens"]) == (
        200,
        1000,
        300,
    )
    assert props["cost_usd"] == pytest.approx((200 * 0.15 + 1000 * 0.075 + 300 * 0.6) / 1e6)


def test_generator_stream_passes_chunks_and_records_time_to_first_chunk(sent) -> None:
    @tc.track_api_call(
        provider="assemblyai", model="universal", operation="transcribe", kind="transcription"
    )
    def transcribe() -> Iterator[str]:
        yield "hello"
        yield "world"
        tc.current_call().set_usage(audio_seconds=600)

    assert list(transcribe()) == ["hello", "world"]
    (event,) = calls(sent)
    props = event["props"]
    assert props["streamed"] is True and props["time_to_first_chunk_ms"] >= 0
    assert props["audio_seconds"] == 600 and props["cost_usd"] == pytest.approx(0.025)


def test_async_generator_stream_with_usage_in_chunks(sent) -> None:
    @tc.track_api_call(provider="anthropic", model="claude-haiku-4", operation="frame_detection")
    async def stream() -> AsyncIterator[Any]:
        yield SimpleNamespace(
            type="message_start",
            message=SimpleNamespace(usage=SimpleNamespace(input_tokens=500, output_tokens=1)),
        )
        yield SimpleNamespace(type="content_block_delta", delta="x")
        yield SimpleNamespace(type="message_delta", usage=SimpleNamespace(output_tokens=80))

    async def consume() -> list[str]:
        return [chunk.type async for chunk in stream()]

    assert asyncio.run(consume()) == ["message_start", "content_block_delta", "message_delta"]
    (event,) = calls(sent)
    assert (event["props"]["input_tokens"], event["props"]["output_tokens"]) == (500, 80)


def test_function_returning_a_stream_is_proxied(sent) -> None:
    class Stream:
        def __init__(self) -> None:
            self.items = iter(
                [
                    {"choices": []},
                    {"choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 5}},
                ]
            )
            self.response = "raw-http-response"
            self.closed = False

        def __iter__(self) -> Stream:
            return self

        def __next__(self) -> Any:
            return next(self.items)

        def close(self) -> None:
            self.closed = True

    @tc.track_api_call(provider="openai", model="gpt-4o", operation="chat")
    def call_llm() -> Stream:
        return Stream()

    stream = call_llm()
    assert stream.response == "raw-http-response"
    assert len(list(stream)) == 2
    (event,) = calls(sent)
    assert event["props"]["input_tokens"] == 10 and event["props"]["streamed"] is True
    second = call_llm()
    next(second)
    second.close()
    assert second.closed is True
    assert len(calls(sent)) == 2


def test_stream_failing_midway_is_an_error(sent) -> None:
    @tc.track_api_call(provider="openai", model="gpt-4o", operation="chat")
    def call_llm() -> Iterator[int]:
        yield 1
        raise ConnectionError("reset")

    with pytest.raises(ConnectionError):
        list(call_llm())
    (event,) = calls(sent)
    assert event["props"]["status"] == "error" and event["props"]["error_type"] == "ConnectionError"


def test_context_manager_sync_and_async(sent) -> None:
    with tc.track_call("openai", "gpt-4o", "summarise") as call:
        call.set_usage(input_tokens=10, output_tokens=2)
    with pytest.raises(KeyError), tc.track_call("openai", "gpt-4o", "summarise"):
        raise KeyError("x")

    async def run() -> None:
        async with tc.track_call("anthropic", "claude-sonnet-4", "x") as call:
            call.mark_fallback(model="claude-haiku-4")

    asyncio.run(run())
    first, second, third = calls(sent)
    assert first["props"]["input_tokens"] == 10 and second["props"]["status"] == "error"
    assert third["props"]["fallback_used"] is True and third["props"]["model"] == "claude-haiku-4"


def test_tenacity_retries_and_fallback_are_counted(sent) -> None:
    attempts = {"n": 0}

    @tc.track_api_call(provider="anthropic", model="claude-sonnet-4", operation="x")
    @retry(stop=stop_after_attempt(3), wait=wait_none(), before_sleep=tc.record_retry)
    def flaky() -> str:
        attempts["n"] += 1
        if attempts["n"] < 3:
            raise ConnectionError
        tc.mark_fallback()
        return "ok"

    assert flaky() == "ok"
    (event,) = calls(sent)
    assert event["props"]["retry_count"] == 2 and event["props"]["fallback_used"] is True
    tc.record_retry()  # outside a call: a no-op
    tc.mark_fallback()


def test_conversation_and_user_follow_into_tasks_and_threads(sent) -> None:
    from shared.observability.log import run_with_context

    @tc.track_api_call(provider="openai", model="gpt-4o", operation="x")
    async def call_llm() -> None:
        return None

    async def main() -> None:
        with tc.call_context(conversation_id="c-77", user_id="u-5", session_id="s-9"):
            await asyncio.gather(asyncio.create_task(call_llm()), call_llm())

    asyncio.run(main())
    import threading

    @tc.track_api_call(provider="openai", model="gpt-4o", operation="y")
    def sync_call() -> None:
        return None

    with tc.call_context(conversation_id="c-88"):
        worker = threading.Thread(target=run_with_context(sync_call))
        worker.start()
        worker.join()
    events = calls(sent)
    assert [e.get("conversation_id") for e in events] == ["c-77", "c-77", "c-88"]
    assert events[0]["user_id"] == "u-5" and events[0]["session_id"] == "s-9"
    assert events[2]["session_id"] == "backend"


def test_missing_price_is_null_cost_with_a_note_and_one_warning(sent, caplog) -> None:
    track_module._warned_models.discard(("openai", "gpt-9"))

    @tc.track_api_call(provider="openai", model="gpt-9", operation="x")
    def call_llm() -> None:
        return None

    call_llm()
    call_llm()
    first, _second = calls(sent)
    assert first["props"]["cost_usd"] is None
    assert first["props"]["cost_note"] == "no price for openai/gpt-9 in 2026-11-01"
    assert [r.getMessage() for r in caplog.records].count("no price for model") == 1


def test_telemetry_failure_never_affects_the_call(sent, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: Any) -> None:
        raise RuntimeError("telemetry bug")

    monkeypatch.setattr(track_module, "extract_usage", broken)
    client = tc.get_client()
    before = client.stats.telemetry_errors

    @tc.track_api_call(provider="openai", model="gpt-4o", operation="x")
    def call_llm() -> int:
        return 42

    assert call_llm() == 42
    assert client.stats.telemetry_errors == before + 1


def test_span_with_genai_attributes(sent) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    old = track_module._tracer
    track_module._tracer = tracer
    try:

        @tc.track_api_call(
            provider="anthropic", model="claude-sonnet-4", operation="bias_prefilter"
        )
        def call_llm() -> Any:
            return anthropic_response(
                input_tokens=100, output_tokens=20, cache_read_input_tokens=50
            )

        call_llm()
    finally:
        track_module._tracer = old
    (span,) = exporter.get_finished_spans()
    attrs = dict(span.attributes or {})
    assert span.name == "chat claude-sonnet-4"
    assert attrs["gen_ai.provider.name"] == "anthropic" and attrs["gen_ai.system"] == "anthropic"
    assert (
        attrs["gen_ai.request.model"] == "claude-sonnet-4"
        and attrs["gen_ai.operation.name"] == "chat"
    )
    assert attrs["gen_ai.usage.input_tokens"] == 150 and attrs["gen_ai.usage.output_tokens"] == 20
    assert attrs["app.cost_usd"] == pytest.approx((100 * 3 + 20 * 15 + 50 * 0.3) / 1e6)


def test_emit_domain_events(sent) -> None:
    with tc.call_context(conversation_id="c-1"):
        assert tc.emit(
            "bias.flagged", {"node_id": "n-1", "bias_type": "framing", "severity": "high"}
        )
    assert tc.emit("frame.detected", {"frame": "moral", "confidence": 0.9}, conversation_id="c-2")
    assert not tc.emit("bias.flagged", {"node_id": "n-1"})  # missing required fields
    assert not tc.emit("nope.x", {})
    assert tc.flush()
    assert [(e["name"], e.get("conversation_id")) for e in sent] == [
        ("bias.flagged", "c-1"),
        ("frame.detected", "c-2"),
    ]


def test_register_usage_extractor_for_another_sdk(sent) -> None:
    tc.register_usage_extractor(
        lambda r: (
            {"input_tokens": r["n_in"], "output_tokens": r["n_out"]}
            if isinstance(r, dict) and "n_in" in r
            else None
        )
    )

    @tc.track_api_call(provider="openai", model="gpt-4o", operation="x")
    def call_llm() -> dict[str, int]:
        return {"n_in": 7, "n_out": 3}

    call_llm()
    (event,) = calls(sent)
    assert (event["props"]["input_tokens"], event["props"]["output_tokens"]) == (7, 3)
