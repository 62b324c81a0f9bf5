"""Token usage read from the response objects of the common SDKs, normalised to our kinds.

Our kinds (the registry's ``llm.call``): ``input_tokens`` are *uncached* input tokens,
``cached_input_tokens`` are read from the prompt cache, ``cache_write_tokens`` were written to
it, ``output_tokens`` exclude reasoning, ``reasoning_tokens`` are billed as output. Providers
count differently, and getting it wrong double-counts cached tokens:

* Anthropic: ``input_tokens`` already exclude ``cache_read_input_tokens`` and
  ``cache_creation_input_tokens``; ``output_tokens`` include thinking.
* OpenAI Chat Completions: ``prompt_tokens`` *include* ``prompt_tokens_details.cached_tokens``,
  ``completion_tokens`` *include* ``completion_tokens_details.reasoning_tokens``.
* OpenAI Responses: ``input_tokens`` include ``input_tokens_details.cached_tokens``,
  ``output_tokens`` include ``output_tokens_details.reasoning_tokens``.

Any other SDK: ``register_usage_extractor(fn)`` where ``fn(response) -> dict | None``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

UsageExtractor = Callable[[Any], dict[str, float] | None]
_extractors: list[UsageExtractor] = []


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def _int(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def _anthropic(usage: Any) -> dict[str, float] | None:
    if _get(usage, "input_tokens") is None and _get(usage, "output_tokens") is None:
        return None
    return {
        "input_tokens": _int(_get(usage, "input_tokens")),
        "output_tokens": _int(_get(usage, "output_tokens")),
        "cached_input_tokens": _int(_get(usage, "cache_read_input_tokens")),
        "cache_write_tokens": _int(_get(usage, "cache_creation_input_tokens")),
    }


def _openai_chat(usage: Any) -> dict[str, float] | None:
    prompt = _get(usage, "prompt_tokens")
    if prompt is None:
        return None
    cached = _int(_get(_get(usage, "prompt_tokens_details"), "cached_tokens"))
    reasoning = _int(_get(_get(usage, "completion_tokens_details"), "reasoning_tokens"))
    completion = _int(_get(usage, "completion_tokens"))
    return {
        "input_tokens": max(0, _int(prompt) - cached),
        "cached_input_tokens": cached,
        "output_tokens": max(0, completion - reasoning),
        "reasoning_tokens": reasoning,
    }


def _openai_responses(usage: Any) -> dict[str, float] | None:
    details = _get(usage, "input_tokens_details")
    out_details = _get(usage, "output_tokens_details")
    if details is None and out_details is None:
        return None
    cached = _int(_get(details, "cached_tokens"))
    reasoning = _int(_get(out_details, "reasoning_tokens"))
    return {
        "input_tokens": max(0, _int(_get(usage, "input_tokens")) - cached),
        "cached_input_tokens": cached,
        "output_tokens": max(0, _int(_get(usage, "output_tokens")) - reasoning),
        "reasoning_tokens": reasoning,
    }


def extract_usage(response: Any) -> dict[str, float] | None:
    """Usage of a response (or stream chunk) in our kinds; None when it carries none."""
    for extractor in _extractors:
        found = extractor(response)
        if found:
            return found
    usage = _get(response, "usage")
    if usage is None:
        message = _get(response, "message")  # Anthropic stream: message_start
        usage = _get(message, "usage")
    if usage is None:
        return None
    for parse in (_openai_chat, _openai_responses, _anthropic):
        found = parse(usage)
        if found is not None:
            return found
    return None


def merge_usage(total: dict[str, float], more: dict[str, float] | None) -> None:
    """Fold a stream chunk's usage into the running total (each kind: the largest seen).

    Streams report cumulative counts (OpenAI's final chunk, Anthropic's message_start then
    message_delta), so the largest value per kind is the total.
    """
    if not more:
        return
    for key, value in more.items():
        if value and value > total.get(key, 0):
            total[key] = value


def register_usage_extractor(extractor: UsageExtractor) -> None:
    """Teach the decorator another SDK: ``extractor(response) -> {kind: count}`` or None."""
    _extractors.insert(0, extractor)
