from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from shared.llm.pricing import PriceTable, Usage, default_price_table

TABLE = PriceTable(
    {
        "version": "t1",
        "models": {
            "anthropic": {
                "claude-sonnet-4": {
                    "input": 3,
                    "output": 15,
                    "cached_input": 0.3,
                    "cache_write": 3.75,
                }
            },
            "openai": {
                "o3-mini": {"input": 1.1, "output": 4.4},
                "flat": {"input": 1, "per_request": 0.01},
            },
            "assemblyai": {"universal": {"audio_per_hour": 0.36}},
        },
    }
)


def test_each_token_kind_is_priced_once_at_its_own_rate() -> None:
    usage = Usage(
        input_tokens=1000, output_tokens=500, cached_input_tokens=4000, cache_write_tokens=2000
    )
    cost = TABLE.cost("anthropic", "claude-sonnet-4", usage)
    # 1000*3 + 500*15 + 4000*0.3 + 2000*3.75 per million
    assert cost.usd == Decimal("0.01920000")
    assert cost.price_version == "t1" and cost.note is None


def test_reasoning_falls_back_to_output_price_and_fees_and_audio() -> None:
    assert TABLE.cost("openai", "o3-mini", Usage(reasoning_tokens=1_000_000)).usd == Decimal("4.4")
    assert TABLE.cost("openai", "flat", Usage()).usd == Decimal("0.01")
    assert TABLE.cost("assemblyai", "universal", Usage(audio_seconds=600)).usd == Decimal("0.06")


def test_dated_model_variant_uses_its_base_price_and_unknown_model_has_a_note() -> None:
    assert TABLE.cost(
        "anthropic", "claude-sonnet-4-20250514", Usage(input_tokens=10**6)
    ).usd == Decimal(3)
    missing = TABLE.cost("anthropic", "claude-unknown", Usage(input_tokens=5))
    assert missing.usd is None
    assert missing.note == "no price for anthropic/claude-unknown in t1"


def test_bundled_table_loads_with_a_version() -> None:
    table = default_price_table()
    assert table.version
    assert table.prices_for("anthropic", "claude-sonnet-4") is not None


DATED = PriceTable(
    {
        "version": "t2",
        "models": {
            "openai": {
                "m": [
                    {"input": 10, "output": 20},
                    {"from": "2026-12-01", "input": 5, "output": 10},
                ],
                "launched": [{"from": "2026-06-01", "input": 1}],
            }
        },
    }
)


def test_a_price_change_applies_from_its_day_and_not_before() -> None:
    million = Usage(input_tokens=10**6)
    before = datetime(2026, 11, 30, 23, 59, tzinfo=UTC)
    after = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
    assert DATED.cost("openai", "m", million, before).usd == Decimal(10)
    assert DATED.cost("openai", "m", million, after).usd == Decimal(5)
    assert DATED.cost("openai", "m-2026", million, after).usd == Decimal(5)  # a dated variant


def test_a_call_before_a_models_first_price_has_none_and_says_so() -> None:
    early = DATED.cost(
        "openai", "launched", Usage(input_tokens=1), datetime(2026, 1, 1, tzinfo=UTC)
    )
    assert early.usd is None and early.note == "no price for openai/launched on 2026-01-01 in t2"
    assert DATED.cost("openai", "launched", Usage(input_tokens=10**6)).usd == Decimal(1)


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ([{"input": 1}, {"input": 2}], "only the first"),
        ([{"from": "2026-02-01", "input": 1}, {"from": "2026-01-01", "input": 2}], "in order"),
    ],
)
def test_dated_prices_must_be_ordered_and_dated(entry: list[dict[str, object]], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        PriceTable({"version": "x", "models": {"p": {"m": entry}}})
