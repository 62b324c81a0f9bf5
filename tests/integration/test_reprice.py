"""Cost reconciliation on the real hot tier: only what the new table changes, exactly once."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import yaml
from sqlalchemy import text

from shared.llm.pricing import PRICES_PATH, PriceTable
from shared.storage.hot.reprice import reprice
from telemetry_cli.history import fill_history
from tests.integration.tiers import Warm

NOW = datetime.now(UTC)


def doubled_sonnet_input() -> PriceTable:
    data = yaml.safe_load(PRICES_PATH.read_text())
    data = copy.deepcopy(data)
    data["version"] = "2099-01-01"
    data["models"]["anthropic"]["claude-sonnet-4"]["input"] *= 2
    return PriceTable(data)


def totals(warm: Warm) -> dict[str, tuple[int, Decimal]]:
    with warm.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT model, count(*), sum(cost_usd) FROM api_calls_log GROUP BY model")
        ).all()
    return {model: (n, total) for model, n, total in rows}


def test_reprice_changes_what_the_new_table_changes_and_nothing_the_second_time(warm: Warm) -> None:
    fill_history(warm.engine, warm.settings, NOW - timedelta(hours=6), NOW, 20)
    before = totals(warm)
    prices = doubled_sonnet_input()

    dry = reprice(warm.engine, prices, NOW - timedelta(days=1), dry_run=True)
    assert dry.changed == sum(n for n, _ in before.values())  # every row gets the new version
    assert totals(warm) == before

    first = reprice(warm.engine, prices, NOW - timedelta(days=1))
    after = totals(warm)
    deltas = {model: d for (_, model), d in first.models.items()}
    sonnet = deltas["claude-sonnet-4"]
    assert sonnet.after_usd > sonnet.before_usd
    assert after["claude-sonnet-4"][1] == sonnet.after_usd
    for model, delta in deltas.items():
        if model != "claude-sonnet-4":
            assert delta.after_usd == delta.before_usd and after[model] == before[model]
    with warm.engine.connect() as conn:
        versions = conn.execute(text("SELECT DISTINCT price_version FROM api_calls_log")).scalars()
        assert list(versions) == ["2099-01-01"]

    second = reprice(warm.engine, prices, NOW - timedelta(days=1))
    assert second.changed == 0 and totals(warm) == after
    assert all(Decimal(m["difference_usd"]) == 0 for m in second.to_json()["models"])


def test_calls_before_the_since_day_are_left_alone(warm: Warm) -> None:
    fill_history(warm.engine, warm.settings, NOW - timedelta(days=3), NOW - timedelta(days=2), 10)
    report = reprice(warm.engine, doubled_sonnet_input(), NOW - timedelta(days=1))
    assert report.changed == 0 and report.models == {}


def test_a_price_change_reprices_only_the_calls_made_from_its_day(warm: Warm) -> None:
    """Sonnet's input price doubles from today: yesterday's calls keep their cost, today's
    change, and the dry run's diff says so per model before anything is written."""
    today = NOW.replace(hour=0, minute=0, second=0, microsecond=0)
    fill_history(warm.engine, warm.settings, today - timedelta(hours=20), today, 20)
    fill_history(warm.engine, warm.settings, today, NOW, 20)
    data = copy.deepcopy(yaml.safe_load(PRICES_PATH.read_text()))
    data["version"] = "2099-01-02"
    old = data["models"]["anthropic"]["claude-sonnet-4"]
    new = {**old, "input": old["input"] * 2, "from": today.date().isoformat()}
    data["models"]["anthropic"]["claude-sonnet-4"] = [old, new]
    prices = PriceTable(data)

    def sonnet_cost(day_filter: str) -> Decimal:
        with warm.engine.connect() as conn:
            return Decimal(
                conn.execute(
                    text(
                        "SELECT coalesce(sum(cost_usd), 0) FROM api_calls_log"
                        f" WHERE model = 'claude-sonnet-4' AND ts {day_filter} :today"
                    ),
                    {"today": today},
                ).scalar_one()
            )

    yesterday_before, today_before = sonnet_cost("<"), sonnet_cost(">=")
    dry = reprice(warm.engine, prices, today - timedelta(days=1), dry_run=True)
    sonnet = next(d for (_, model), d in dry.models.items() if model == "claude-sonnet-4")
    assert sonnet.after_usd > sonnet.before_usd
    assert sonnet_cost(">=") == today_before  # a dry run writes nothing
    reprice(warm.engine, prices, today - timedelta(days=1))
    assert sonnet_cost("<") == yesterday_before
    assert sonnet_cost(">=") > today_before
