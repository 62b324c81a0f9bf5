"""Grouped metrics: values per group against a baseline, one alert machine per group, a bound on
how many fire, and notices that name their group."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.contract.registry import default_registry
from shared.metrics import messages
from shared.metrics.alerting import AlertState, replay_groups
from shared.metrics.catalog import CatalogError, default_catalog, parse_catalog
from shared.metrics.evaluate import Evaluator, GroupedEvaluation, Observation, grid_for

SPEND = default_catalog().get("llm_spend_per_user")  # above 3 / 15 usd, 2 of 3, 24 h of 1 h
CACHE = default_catalog().get("cache_hit_rate_vs_baseline")  # below 0.5 / 0.25 of baseline
T0 = datetime(2026, 11, 20, tzinfo=UTC)
HOUR = timedelta(hours=1)


class FakeRunner:
    """Answers the grouped bucket query with planted (group, bucket, value, n) rows per measure,
    in the order the measures are asked for."""

    dialect = "postgres"

    def __init__(self, *answers: list[tuple[str, int, float, int]]) -> None:
        self.answers = list(answers)
        self.queries: list[str] = []

    def rows(self, query: str) -> list[tuple[Any, ...]]:
        self.queries.append(query)
        return list(self.answers.pop(0))


def bucket(at: datetime) -> int:
    """The grain bucket of a row at ``at`` (hourly grain)."""
    return int(at.timestamp() // 3600) + 1


def spend(hours: list[tuple[str, datetime, float]]) -> list[tuple[str, int, float, int]]:
    return [(group, bucket(at), value, 3) for group, at, value in hours]


def test_a_total_is_each_groups_window_sum_and_a_quiet_group_spent_nothing() -> None:
    now = T0 + 30 * HOUR
    rows = spend([("u1", now - 2 * HOUR, 2.0), ("u1", now - HOUR, 2.5), ("u2", now - HOUR, 0.1)])
    grouped = GroupedEvaluation(Evaluator(FakeRunner(rows), default_registry()), SPEND)
    result = grouped.evaluate(grid_for(SPEND, now, now), known=["u-old"])
    assert set(result) == {"u1", "u2", "u-old"}
    assert result["u1"][0].value == 4.5 and result["u1"][0].status == "ok"
    quiet = result["u-old"][0]
    assert (quiet.status, quiet.value, quiet.n) == ("ok", 0.0, 0)  # judged: it can resolve


def test_a_ratio_against_its_baseline_and_groups_without_one_are_not_judged() -> None:
    now = T0 + 8 * 24 * HOUR
    week = [now - 3 * HOUR - k * HOUR for k in range(1, 7 * 24)]
    cached = [("op", at, 40.0, 10) for at in week] + [("op", now - HOUR, 0.0, 60)]
    total = [("op", at, 100.0, 10) for at in week] + [("op", now - HOUR, 100.0, 60)]
    total += [("new", now - HOUR, 100.0, 60)]  # no week behind it
    runner = FakeRunner(
        [(g, bucket(at), v, n) for g, at, v, n in cached],
        [(g, bucket(at), v, n) for g, at, v, n in total],
    )
    result = GroupedEvaluation(Evaluator(runner, default_registry()), CACHE).evaluate(
        grid_for(CACHE, now, now)
    )
    assert result["op"][0].value == 0.0 and result["op"][0].status == "ok"  # 0 of its usual 0.4
    assert result["new"][0].status == "insufficient"


def observations(values: list[float], start: datetime = T0) -> list[Observation]:
    return [Observation(start + k * HOUR, "ok", v, 10) for k, v in enumerate(values)]


def test_each_group_fires_and_resolves_on_its_own() -> None:
    states, notices = replay_groups(
        SPEND,
        {"runaway": observations([1, 5, 6, 7] + [0] * 4), "calm": observations([0.5] * 8)},
        {},
    )
    assert [(n.kind, n.group) for n in notices] == [("firing", "runaway"), ("resolved", "runaway")]
    assert notices[0].alert_id == notices[1].alert_id
    assert states == {} or all(s.status != "firing" for s in states.values())
    _, more = replay_groups(SPEND, {"runaway": observations([9, 9], T0 + 9 * HOUR)}, states)
    assert more == []  # the cooldown holds the same group back


def test_at_most_max_groups_fire_the_worst_first_and_the_alert_says_how_many_more() -> None:
    breaching = {f"u{k:02d}": observations([10 + k] * 3) for k in range(SPEND.max_groups + 3)}
    states, notices = replay_groups(SPEND, breaching, {})
    fired = [n for n in notices if n.kind == "firing"]
    assert len(fired) == SPEND.max_groups
    assert {n.group for n in fired} == {f"u{k:02d}" for k in range(3, SPEND.max_groups + 3)}
    assert all(n.more_groups == 3 for n in fired)
    assert "3 more breach" in messages.summary(SPEND, fired[0])
    held = {"u00", "u01", "u02"}
    assert not any(states.get(g, AlertState()).status == "firing" for g in held)
    # Next run the held groups still breach, and now fire.
    later = {g: observations([20] * 2, T0 + 3 * HOUR) for g in held}
    _, next_notices = replay_groups(SPEND, later, states)
    assert {n.group for n in next_notices if n.kind == "firing"} == held


def test_group_states_round_trip_as_stored_and_settled_groups_are_dropped() -> None:
    states, _ = replay_groups(SPEND, {"a": observations([5, 5]), "b": observations([0.1])}, {})
    assert set(states) == {"a"}  # "b" holds nothing worth keeping
    stored = AlertState(groups=states).to_json()
    assert AlertState.from_json(stored).groups == states


def test_a_notice_names_its_group_and_its_key_is_unique_per_group() -> None:
    _, notices = replay_groups(
        SPEND, {"a": observations([5, 5, 5]), "b": observations([6, 6, 6])}, {}
    )
    a, b = notices
    assert a.key != b.key and a.alert_id != b.alert_id
    facts = messages.details(SPEND, a, "r/")
    assert facts["group_by"] == "user_key" and facts["group"] == "a"


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"group_by": "session_id"}, "group_by must be one of"),
        (
            {
                "kind": "quantile",
                "quantile": 0.5,
                "measure": {"table": "api_calls_log", "field": "latency_ms"},
            },
            "only a ratio or a total",
        ),
        ({"group_by": None}, "a baseline compares a grouped"),
        ({"baseline": "1h"}, "a baseline spans at least one window"),
    ],
)
def test_grouping_rules_are_checked(changes: dict[str, Any], says: str) -> None:
    entry: dict[str, Any] = {
        "name": "x",
        "description": "d",
        "owner": "o",
        "unit": "usd",
        "dashboard": "LLM Cost",
        "kind": "total",
        "measure": {"table": "api_calls_log", "agg": "sum", "fields": ["cost_usd"]},
        "group_by": "operation",
        "baseline": "7d",
        "source": "hot",
        "window": "3h",
        "grain": "1h",
        "thresholds": {"direction": "above", "warn": 3, "critical": 10},
        "fire": {"n": 2, "m": 3},
        "keep_firing_for": "2h",
        "cooldown": "12h",
        "channels": ["topic"],
        "runbook": "llm-spend.md",
        **changes,
    }
    import yaml

    with pytest.raises(CatalogError, match=says):
        parse_catalog(yaml.safe_dump({"metrics": [entry]}))
