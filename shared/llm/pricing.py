"""Cost of an LLM or speech call from the versioned price table (``shared/llm/prices.yaml``).

Each token kind has its own price: uncached input, cached input read, cache write, output and
reasoning; cached tokens are priced once, at their own rate. A model with no price is not an
error: :meth:`PriceTable.cost` returns ``None`` and a note saying why.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

PRICES_PATH = Path(__file__).resolve().parent / "prices.yaml"
_MILLION = Decimal(1_000_000)
_HOUR = Decimal(3600)


@dataclass(frozen=True)
class Usage:
    """What a call consumed, by kind."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    audio_seconds: float = 0.0


#: The token kinds of a call, each its own ``api_calls_log`` column and ``llm.call`` prop.
TOKEN_KINDS: tuple[str, ...] = tuple(f.name for f in fields(Usage) if f.name.endswith("_tokens"))


@dataclass(frozen=True)
class Cost:
    """A computed cost (``usd`` is None when the model has no price) and the table version."""

    usd: Decimal | None
    price_version: str
    note: str | None = None


class PriceTable:
    """Prices per provider and model, with the table's version."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.version = str(data["version"])
        self._models: dict[str, dict[str, dict[str, Decimal]]] = {
            provider: {
                model: {k: Decimal(str(v)) for k, v in prices.items()}
                for model, prices in models.items()
            }
            for provider, models in data["models"].items()
        }
        self._found: dict[tuple[str, str], dict[str, Decimal] | None] = {}

    def prices_for(self, provider: str, model: str) -> dict[str, Decimal] | None:
        """The prices of a model; an unknown dated variant falls back to its base name."""
        key = (provider, model)
        if key not in self._found:
            if len(self._found) > 4096:  # bounded: model names come from outside
                self._found.clear()
            self._found[key] = self._look_up(provider, model)
        return self._found[key]

    def _look_up(self, provider: str, model: str) -> dict[str, Decimal] | None:
        models = self._models.get(provider, {})
        if model in models:
            return models[model]
        for known in sorted(models, key=len, reverse=True):
            if model.startswith(known + "-"):
                return models[known]
        return None

    def cost(self, provider: str, model: str, usage: Usage) -> Cost:
        """Cost of one call in USD under this table."""
        prices = self.prices_for(provider, model)
        if prices is None:
            return Cost(None, self.version, f"no price for {provider}/{model} in {self.version}")
        zero = Decimal(0)
        output = prices.get("output", zero)
        tokens = (
            usage.input_tokens * prices.get("input", zero)
            + usage.output_tokens * output
            + usage.cached_input_tokens * prices.get("cached_input", prices.get("input", zero))
            + usage.cache_write_tokens * prices.get("cache_write", prices.get("input", zero))
            + usage.reasoning_tokens * prices.get("reasoning", output)
        ) / _MILLION
        audio = Decimal(str(usage.audio_seconds)) * prices.get("audio_per_hour", zero) / _HOUR
        total = tokens + audio + prices.get("per_request", zero)
        return Cost(total.quantize(Decimal("0.00000001")), self.version)


def load_price_table(path: Path | str = PRICES_PATH) -> PriceTable:
    """Read a price table file."""
    return PriceTable(yaml.safe_load(Path(path).read_text(encoding="utf-8")))


@functools.cache
def default_price_table() -> PriceTable:
    """The bundled price table, read once per process."""
    return load_price_table()


def cost_props(provider: str, model: str, usage: Usage) -> dict[str, Any]:
    """The ``llm.call`` props of a call's cost: ``cost_usd``, ``price_version`` and, when the
    model has no price, ``cost_note`` (the decorator and OTLP ingest both use this)."""
    cost = default_price_table().cost(provider, model, usage)
    props: dict[str, Any] = {
        "cost_usd": float(cost.usd) if cost.usd is not None else None,
        "price_version": cost.price_version,
    }
    if cost.usd is None:
        props["cost_note"] = (cost.note or "no price")[:128]
    return props
