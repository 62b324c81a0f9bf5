"""GenAI spans to llm.call events: names old and new, token normalisation, status, identity."""

from __future__ import annotations

from typing import Any

import pytest

from shared.contract.otlp import STATUS_ERROR, SpanRecord
from shared.errors import ContractViolation
from shared.llm import genai

START = 1_795_521_540_000_000_000


def span(status: int = 0, **attributes: Any) -> SpanRecord:
    return SpanRecord("ab" * 16, "cd" * 8, "chat", START, START + 2_000_000, status, attributes)


def test_current_conventions_take_cached_and_reasoning_out_once() -> None:
    event = genai.to_llm_call(
        span(
            **{
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": 1000,
                "gen_ai.usage.cache_read.input_tokens": 600,
                "gen_ai.usage.cache_creation.input_tokens": 100,
                "gen_ai.usage.output_tokens": 90,
                "gen_ai.usage.reasoning.output_tokens": 30,
            }
        )
    )
    props = event["props"]
    assert (props["input_tokens"], props["cached_input_tokens"], props["cache_write_tokens"]) == (
        300,
        600,
        100,
    )
    assert (props["output_tokens"], props["reasoning_tokens"]) == (60, 30)
    assert props["latency_ms"] == 2.0 and props["operation"] == "chat"
    assert event["session_id"] == "trace-" + "ab" * 16
    assert event["event_id"] == genai.event_id(span())  # the same span, the same id


def test_cache_beyond_the_input_is_stored_as_sent_and_flagged() -> None:
    """Under the conventions the cache is inside the input: 900 cached of 50 cannot balance,
    so the counts are kept as sent and the call names the broken invariant."""
    event = genai.to_llm_call(
        span(
            **{
                "gen_ai.request.model": "m",
                "gen_ai.usage.input_tokens": 50,
                "gen_ai.usage.cache_read.input_tokens": 900,
            }
        )
    )
    props = event["props"]
    assert (props["input_tokens"], props["cached_input_tokens"]) == (50, 900)
    assert props["token_anomaly"] == "cache_exceeds_input"
    assert props["token_source"] == "unknown"


@pytest.mark.parametrize(
    ("value", "says"),
    [(-1, "non-negative"), (1.5, "whole number"), ("x", "not a token count"), (True, "boolean")],
)
def test_bad_token_counts_are_named(value: Any, says: str) -> None:
    with pytest.raises(ContractViolation, match=says):
        genai.sent_tokens({"gen_ai.usage.output_tokens": value})


def test_counts_as_strings_and_integral_floats_are_read() -> None:
    sent = genai.sent_tokens({"gen_ai.usage.input_tokens": "25", "gen_ai.usage.output_tokens": 3.0})
    assert (sent.input, sent.output) == (25, 3)


def test_cache_write_is_read_under_its_new_name_and_the_one_it_replaces() -> None:
    for key in (
        "gen_ai.usage.cache_write.input_tokens",
        "gen_ai.usage.cache_write_input_tokens",
        "gen_ai.usage.cache_creation.input_tokens",
        "gen_ai.usage.cache_creation_input_tokens",
    ):
        assert genai.sent_tokens({key: 7}).cache_write == 7, key


def test_time_to_first_chunk_is_read_in_seconds() -> None:
    attributes = {"gen_ai.request.model": "m", "gen_ai.response.time_to_first_chunk": 0.25}
    assert genai.to_llm_call(span(**attributes))["props"]["time_to_first_chunk_ms"] == 250.0
    attributes["gen_ai.response.time_to_first_chunk"] = -1
    assert "time_to_first_chunk_ms" not in genai.to_llm_call(span(**attributes))["props"]


def test_status_error_type_and_timeout() -> None:
    failed = genai.to_llm_call(span(STATUS_ERROR, **{"gen_ai.request.model": "m"}))
    assert failed["props"]["status"] == "error" and failed["props"]["error_type"] == "error"
    timed = genai.to_llm_call(span(**{"gen_ai.request.model": "m", "error.type": "ReadTimeout"}))
    assert timed["props"]["status"] == "timeout"
    assert timed["props"]["provider"] == "unknown" and timed["props"]["cost_usd"] is None


def test_identity_and_stream_flags() -> None:
    event = genai.to_llm_call(
        span(
            **{
                "gen_ai.request.model": "m",
                "gen_ai.conversation.id": "c-1",
                "session.id": "s-1",
                "user.id": 42,
                "llm.is_streaming": True,
            }
        )
    )
    assert (event["conversation_id"], event["session_id"], event["user_id"]) == ("c-1", "s-1", "42")
    assert event["props"]["streamed"] is True


@pytest.mark.parametrize(
    ("record", "says"),
    [
        (span(**{"gen_ai.system": "openai"}), "without a model"),
        (
            SpanRecord("ab" * 16, "cd" * 8, "x", START, START - 1, 0, {"llm.model_name": "m"}),
            "ends before",
        ),
        (SpanRecord("ab" * 16, "cd" * 8, "x", 0, 0, 0, {"llm.model_name": "m"}), "no start time"),
    ],
)
def test_unusable_spans_say_why(record: SpanRecord, says: str) -> None:
    with pytest.raises(ContractViolation, match=says):
        genai.to_llm_call(record)


def test_which_spans_are_calls() -> None:
    assert not genai.is_genai(span(**{"http.request.method": "GET"}))
    assert genai.is_genai(span(**{"llm.model_name": "m"}))
    assert not genai.is_model_call(span(**{"gen_ai.operation.name": "execute_tool"}))
    assert not genai.is_model_call(span(**{"openinference.span.kind": "CHAIN"}))
    assert genai.is_model_call(span(**{"openinference.span.kind": "LLM"}))
    assert genai.wanted("gen_ai.usage.anything") and not genai.wanted("gen_ai.input.messages")
    assert not genai.wanted("gen_ai.prompt.0.content")


def test_event_id_is_the_rfc_4122_uuid5_of_trace_and_span() -> None:
    import uuid

    record = span()
    expected = uuid.uuid5(genai.EVENT_ID_NAMESPACE, record.trace_id + record.span_id)
    assert genai.event_id(record) == str(expected)
