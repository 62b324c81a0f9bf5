"""Cost of an LLM or speech call from the versioned price table (``shared/llm/prices.yaml``).

Each token kind has its own price: uncached input, cached input read, cache write, output and
reasoning; cached tokens are priced once, at their own rate. A model with no price is not an
error: :meth:`PriceTable.cost` returns ``None`` and a note saying why.

A model's prices may change over time: its entry is then a list of prices, each with the day
it applies ``from`` (UTC; the first may leave it out: since always). A call is priced by the
entry in force when it was made, so a price change applies from its date and never before,
and a reprice of past calls keeps each at the price of its own day.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime
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


#: One model's prices from a day on (``None``: since always).
Dated = tuple[date | None, dict[str, Decimal]]


def _dated(entry: Any, where: str) -> tuple[Dated, ...]:
    """A model's entry (one price mapping, or a list of them with ``from`` days), oldest first."""
    entries = entry if isinstance(entry, list) else [entry]
    dated: list[Dated] = []
    for index, given in enumerate(entries):
        prices = dict(given)
        start = prices.pop("from", None)
        if start is not None and not isinstance(start, date):
            start = date.fromisoformat(str(start))
        if start is None and index:
            raise ValueError(f"{where}: only the first of several prices may leave out `from`")
        dated.append((start, {k: Decimal(str(v)) for k, v in prices.items()}))
    days = [d for d, _ in dated if d is not None]
    if days != sorted(set(days)):
        raise ValueError(f"{where}: the `from` days must be in order, each once")
    return tuple(dated)


class PriceTable:
    """Prices per provider and model (each dated where it changed), with the table's version."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.version = str(data["version"])
        self._models: dict[str, dict[str, tuple[Dated, ...]]] = {
            provider: {
                model: _dated(entry, f"{provider}/{model}") for model, entry in models.items()
            }
            for provider, models in data["models"].items()
        }
        self._found: dict[tuple[str, str], tuple[Dated, ...] | None] = {}

    def prices_for(
        self, provider: str, model: str, on: date | None = None
    ) -> dict[str, Decimal] | None:
        """The prices of a model on day ``on`` (UTC; None: today); an unknown dated variant
        falls back to its base name."""
        key = (provider, model)
        if key not in self._found:
            if len(self._found) > 4096:  # bounded: model names come from outside
                self._found.clear()
            self._found[key] = self._look_up(provider, model)
        dated = self._found[key]
        if dated is None:
            return None
        day = on or datetime.now(UTC).date()
        in_force = None
        for start, prices in dated:
            if start is None or start <= day:
                in_force = prices
        return in_force

    def _look_up(self, provider: str, model: str) -> tuple[Dated, ...] | None:
        models = self._models.get(provider, {})
        if model in models:
            return models[model]
        for known in sorted(models, key=len, reverse=True):
            if model.startswith(known + "-"):
                return models[known]
        return None

    def cost(self, provider: str, model: str, usage: Usage, at: datetime | None = None) -> Cost:
        """Cost of one call made at ``at`` (None: now) in USD under this table."""
        on = at.astimezone(UTC).date() if at is not None else None
        prices = self.prices_for(provider, model, on)
        if prices is None:
            known = self._found.get((provider, model)) is not None
            when = f" on {on or datetime.now(UTC).date()}" if known else ""
            note = f"no price for {provider}/{model}{when} in {self.version}"
            return Cost(None, self.version, note)
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


def cost_props(
    provider: str, model: str, usage: Usage, at: datetime | None = None
) -> dict[str, Any]:
    """The ``llm.call`` props of a call's cost at ``at`` (None: now): ``cost_usd``,
    ``price_version`` and, when the model has no price, ``cost_note`` (the decorator and OTLP
    ingest both use this)."""
    cost = default_price_table().cost(provider, model, usage, at)
    props: dict[str, Any] = {
        "cost_usd": float(cost.usd) if cost.usd is not None else None,
        "price_version": cost.price_version,
    }
    if cost.usd is None:
        props["cost_note"] = (cost.note or "no price")[:128]
    return props
