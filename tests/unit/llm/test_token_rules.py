"""The token rules, each against the real export it was made from, and the ledger's invariants."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.contract.otlp import decode_json
from shared.llm import genai
from shared.llm.token_rules import (
    CONVENTIONS,
    TOKEN_RULES,
    SentTokens,
    TokenRule,
    read_tokens,
    rule_for,
)
from tests.integration.otlp.fake_llm import LEDGER

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "otlp"

#: Each fixture's provider: its fake server's usage, in our kinds, is ``LEDGER[provider]``.
PROVIDERS = {
    "genai_openai.json": "openai",
    "genai_anthropic.json": "anthropic",
    "genai_google_genai.json": "gemini",
    "genai_openlit_anthropic.json": "anthropic",
}


def model_calls(fixture: str) -> list[Any]:
    spans = decode_json((FIXTURES / fixture).read_bytes(), genai.wanted)
    return [s for s in spans if genai.is_genai(s) and genai.is_model_call(s)]


def kinds(props: dict[str, Any]) -> tuple[int, ...]:
    names = ("input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens")
    return (*(props[n] for n in names), props["reasoning_tokens"])


@pytest.mark.parametrize("rule", TOKEN_RULES, ids=lambda rule: rule.fixture)
def test_each_rule_reads_its_golden_export_into_a_balanced_ledger(rule: TokenRule) -> None:
    calls = model_calls(rule.fixture)
    # plain, streamed, failing (OpenLIT's failing span carries no GenAI attributes at all)
    assert len(calls) == (2 if rule.scope == "openlit." else 3)
    plain = genai.to_llm_call(calls[0])["props"]
    assert rule_for(calls[0].scope_name, calls[0].scope_version, plain["provider"]) is rule
    assert kinds(plain) == LEDGER[PROVIDERS[rule.fixture]]
    assert "token_anomaly" not in plain
    assert plain["token_source"].startswith(calls[0].scope_name)
    for call in calls:
        assert "token_anomaly" not in genai.to_llm_call(call)["props"]


def test_openlits_anthropic_input_read_by_the_conventions_would_break_the_ledger() -> None:
    """Why the OpenLIT row exists: its input (300) leaves out the 1,100 cached tokens."""
    plain = model_calls("genai_openlit_anthropic.json")[0]
    usage, anomaly = read_tokens(genai.sent_tokens(plain.attributes), CONVENTIONS)
    assert anomaly == "cache_exceeds_input" and usage.input_tokens == 300


def test_streamed_official_calls_carry_their_time_to_first_chunk() -> None:
    for fixture in ("genai_openai.json", "genai_google_genai.json"):
        streamed = genai.to_llm_call(model_calls(fixture)[1])["props"]
        assert streamed["streamed"] is True and streamed["time_to_first_chunk_ms"] > 0


def test_the_rows_fixtures_are_real_exports_of_their_scope() -> None:
    for rule in TOKEN_RULES:
        scopes = {
            scope["scope"]["name"]
            for resource in json.loads((FIXTURES / rule.fixture).read_text())["resourceSpans"]
            for scope in resource["scopeSpans"]
        }
        assert any(rule.matches(name, "", rule.provider or "") for name in scopes), rule


def test_a_scope_version_before_a_rows_first_is_read_by_the_conventions() -> None:
    rule = TokenRule("lib.x", False, True, "f.json", "why", since="2.0")
    assert rule.matches("lib.x", "2.1", "p") and rule.matches("lib.x", "", "p")
    assert not rule.matches("lib.x", "1.9", "p") and not rule.matches("lib.y", "2.1", "p")
    assert rule.matches("lib.x", "not a version", "p")  # read by the row, never lost


counts = st.integers(0, 10**6)


@given(
    sent=st.builds(SentTokens, counts, counts, counts, counts, counts),
    cache_inside=st.booleans(),
    reasoning_inside=st.booleans(),
)
def test_a_call_either_balances_or_names_the_invariant_it_breaks(
    sent: SentTokens, cache_inside: bool, reasoning_inside: bool
) -> None:
    rule = TokenRule("s", cache_inside, reasoning_inside, "", "")
    usage, anomaly = read_tokens(sent, rule)
    total_input = sent.input if cache_inside else sent.input + sent.cache_read + sent.cache_write
    balanced = usage.input_tokens + usage.cached_input_tokens + usage.cache_write_tokens
    if anomaly is None:
        assert balanced == total_input
        if reasoning_inside:
            assert usage.reasoning_tokens + usage.output_tokens == sent.output
    elif anomaly == "cache_exceeds_input":  # kept as sent
        assert (usage.input_tokens, usage.cached_input_tokens) == (sent.input, sent.cache_read)
        assert cache_inside and sent.cache_read + sent.cache_write > sent.input
    else:
        assert anomaly == "reasoning_exceeds_output" and reasoning_inside
        assert (usage.output_tokens, usage.reasoning_tokens) == (sent.output, sent.reasoning)
        assert sent.reasoning > sent.output
    assert min(usage.input_tokens, usage.output_tokens) >= 0
