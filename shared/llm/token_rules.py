"""How each instrumentation counts tokens, and the ledger every stored call must balance.

The GenAI conventions say ``gen_ai.usage.input_tokens`` includes the tokens read from and
written to the prompt cache, and ``gen_ai.usage.output_tokens`` includes the reasoning tokens.
Not every instrumentation sends that: which one sent a span (its instrumentation scope's name
and version) decides how its counts are read, by the first row of :data:`TOKEN_RULES` that
matches it, else by the conventions. Each row is backed by a golden fixture, a real export of
that instrumentation (``tests/fixtures/otlp/``), made by ``capture_fixtures.py``.

Once read, a call's counts must balance (:func:`read_tokens`):

* uncached input + cache read + cache write = input;
* reasoning <= output, where the source counts reasoning inside the output.

A span whose counts cannot balance under its rule (its cache exceeds its input, or its
reasoning its output) is not refused and not mended: it is stored with its counts as the
provider sent them (each count taken as its own kind) and flagged with the broken invariant
(``token_anomaly``), so cost stays auditable and the anomaly is counted by reason and source.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

from packaging.version import InvalidVersion, Version

from shared.llm.pricing import Usage

#: The invariants a call's counts can break (``token_anomaly``).
TokenAnomaly = Literal["cache_exceeds_input", "reasoning_exceeds_output"]
TOKEN_ANOMALIES: tuple[TokenAnomaly, ...] = ("cache_exceeds_input", "reasoning_exceeds_output")


@dataclass(frozen=True)
class TokenRule:
    """How one source counts: does its input include the cache, its output the reasoning?

    ``scope`` is an instrumentation scope name, or a prefix of them ending in a dot;
    ``provider`` narrows the row to calls to one provider; ``since`` to that scope version and
    later (a scope that sends no version matches any ``since``).
    """

    scope: str
    input_includes_cache: bool
    output_includes_reasoning: bool
    fixture: str
    why: str
    provider: str | None = None
    since: str | None = None

    def matches(self, scope: str, version: str, provider: str) -> bool:
        """Whether this row decides how a span from ``scope`` ``version`` is read."""
        if self.scope.endswith("."):
            if not scope.startswith(self.scope):
                return False
        elif scope != self.scope:
            return False
        if self.provider is not None and provider != self.provider:
            return False
        return self.since is None or _at_least(version, self.since)


#: The conventions: cache inside the input, reasoning inside the output.
CONVENTIONS = TokenRule(
    scope="",
    input_includes_cache=True,
    output_includes_reasoning=True,
    fixture="",
    why="the GenAI semantic conventions",
)

TOKEN_RULES: tuple[TokenRule, ...] = (
    TokenRule(
        scope="openlit.",
        provider="anthropic",
        input_includes_cache=False,
        output_includes_reasoning=True,
        fixture="genai_openlit_anthropic.json",
        why="OpenLIT passes Anthropic's input_tokens, which exclude the cache, as the input",
    ),
    TokenRule(
        scope="opentelemetry.instrumentation.google_genai",
        input_includes_cache=True,
        output_includes_reasoning=True,
        fixture="genai_google_genai.json",
        why="Gemini reports thinking beside the candidates; the instrumentation adds it to the"
        " output, so reasoning is inside the output",
    ),
    TokenRule(
        scope="opentelemetry.instrumentation.genai.openai",
        input_includes_cache=True,
        output_includes_reasoning=True,
        fixture="genai_openai.json",
        why="OpenAI counts reasoning inside completion_tokens and cached tokens inside"
        " prompt_tokens",
    ),
    TokenRule(
        scope="opentelemetry.instrumentation.genai.anthropic",
        input_includes_cache=True,
        output_includes_reasoning=True,
        fixture="genai_anthropic.json",
        why="the official instrumentation adds Anthropic's cache reads and writes to its"
        " uncached input",
    ),
)


@functools.lru_cache(maxsize=256)
def _at_least(version: str, since: str) -> bool:
    if not version:
        return True
    try:
        return Version(version) >= Version(since)
    except InvalidVersion:
        return True  # an unreadable version: the row's reading, not a lost span


@functools.lru_cache(maxsize=1024)
def rule_for(scope: str, version: str, provider: str) -> TokenRule:
    """The row deciding how a span from ``scope`` ``version`` about ``provider`` is read."""
    for rule in TOKEN_RULES:
        if rule.matches(scope, version, provider):
            return rule
    return CONVENTIONS


@dataclass(frozen=True)
class SentTokens:
    """A span's counts as its source sent them (0 where it sent none)."""

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0
    reasoning: int = 0


def read_tokens(sent: SentTokens, rule: TokenRule) -> tuple[Usage, TokenAnomaly | None]:
    """The call's tokens in our kinds (each token once, at its own price), and the invariant
    the counts break, if any (then each count is kept as sent)."""
    anomaly: TokenAnomaly | None = None
    cache = sent.cache_read + sent.cache_write
    uncached = sent.input
    if rule.input_includes_cache:
        if cache <= sent.input:
            uncached = sent.input - cache
        else:
            anomaly = "cache_exceeds_input"
    visible = sent.output
    if rule.output_includes_reasoning:
        if sent.reasoning <= sent.output:
            visible = sent.output - sent.reasoning
        elif anomaly is None:
            anomaly = "reasoning_exceeds_output"
    usage = Usage(
        input_tokens=uncached,
        output_tokens=visible,
        cached_input_tokens=sent.cache_read,
        cache_write_tokens=sent.cache_write,
        reasoning_tokens=sent.reasoning,
    )
    return usage, anomaly
