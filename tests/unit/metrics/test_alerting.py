"""The alert state machine: fires once, resolves once, never flaps, never goes silent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.metrics.alerting import AlertState, replay, step
from shared.metrics.catalog import default_catalog
from shared.metrics.evaluate import Observation

METRIC = default_catalog().get("llm_error_rate")  # above: warn 1.5, critical 2; 3 of 4
T0 = datetime(2026, 11, 1, tzinfo=UTC)
GRAIN = timedelta(minutes=15)


def series(
    values: list[float | None], status: str = "ok", start: datetime = T0
) -> list[Observation]:
    out = []
    for k, value in enumerate(values):
        at = start + k * GRAIN
        if value is None:
            out.append(Observation(at, "no_data", None, 0))
        else:
            out.append(Observation(at, status, value, 500))  # type: ignore[arg-type]
    return out


def kinds(values: list[float | None]) -> list[str]:
    return [n.kind for n in replay(METRIC, series(values))[1]]


def test_normal_values_fire_nothing() -> None:
    assert kinds([0.5, 0.7, 1.2, 0.4] * 20) == []


def test_a_sustained_breach_fires_once_and_resolves_once() -> None:
    state, notices = replay(METRIC, series([0.5] * 4 + [5.0] * 12 + [0.5] * 12))
    assert [n.kind for n in notices] == ["firing", "resolved"]
    firing, resolved = notices
    assert firing.severity == "critical" and firing.at == T0 + 6 * GRAIN  # third breach
    # 45 min keep_firing_for after the last breach (index 15): resolved at index 18.
    assert resolved.at == T0 + 18 * GRAIN
    assert resolved.alert_id == firing.alert_id and state.status == "ok"


def test_fewer_than_n_of_m_breaches_do_not_fire() -> None:
    assert kinds([0.5, 5.0, 0.5, 5.0, 0.5, 0.5, 5.0, 0.5] * 5) == []


def test_a_value_hovering_at_the_threshold_does_not_flap() -> None:
    """grafana#35539: firing/resolved every evaluation. Here: one pair over hours of hovering."""
    hovering = [2.5, 2.5, 2.5] + [2.5, 1.0] * 24 + [0.5] * 10
    assert kinds(hovering) == ["firing", "resolved"]


def test_a_flapping_metric_respects_the_cooldown() -> None:
    # breach 1 h, calm 1 h, breach 1 h…: resolves after each calm hour, but the 2 h cooldown
    # holds the next firing until it has passed.
    flapping = ([5.0] * 4 + [0.5] * 4) * 6
    _state, notices = replay(METRIC, series(flapping))
    fired = [n.at for n in notices if n.kind == "firing"]
    resolved = [n.at for n in notices if n.kind == "resolved"]
    assert len(fired) == len(resolved) or len(fired) == len(resolved) + 1
    for previous, nxt in zip(resolved, fired[1:], strict=False):
        assert nxt - previous >= METRIC.cooldown_td
    assert len(fired) < 6  # without the cooldown every burst would fire


def test_a_breach_during_the_cooldown_fires_when_the_cooldown_ends() -> None:
    values = [5.0] * 4 + [0.5] * 4 + [5.0] * 16
    state, notices = replay(METRIC, series(values))
    fired = [n.at for n in notices if n.kind == "firing"]
    resolved = next(n.at for n in notices if n.kind == "resolved")
    assert len(fired) == 2 and fired[1] == resolved + METRIC.cooldown_td
    assert state.status == "firing"


def test_warn_then_critical_escalates_once() -> None:
    notices = replay(METRIC, series([1.7] * 4 + [3.0] * 6))[1]
    assert [(n.kind, n.severity) for n in notices] == [
        ("firing", "warning"),
        ("escalated", "critical"),
    ]


def test_no_data_is_a_condition_of_its_own_notified_once_each_way() -> None:
    assert kinds([0.5, None, None, None, 0.5, 0.6]) == ["no_data", "data_back"]


def test_an_evaluation_failure_is_notified_once_and_holds_a_firing_alert() -> None:
    state, _notices = replay(METRIC, series([5.0] * 4))
    assert state.status == "firing"
    broken = [
        Observation(T0 + (4 + k) * GRAIN, "error", None, 0, "OperationalError") for k in range(5)
    ]
    state, more = replay(METRIC, broken, state)
    assert [n.kind for n in more] == ["eval_failed"] and state.status == "firing"
    state, back = replay(METRIC, series([0.5] * 4, start=T0 + 9 * GRAIN), state)
    assert [n.kind for n in back] == ["eval_recovered", "resolved"]


def test_too_few_observations_hold_the_state() -> None:
    state, _notices = replay(METRIC, series([5.0] * 4))
    assert state.status == "firing"
    few = [Observation(T0 + (4 + k) * GRAIN, "insufficient", 0.1, 10) for k in range(20)]
    state, more = replay(METRIC, few, state)
    assert more == [] and state.status == "firing"


def test_a_rerun_of_the_same_evaluation_sends_nothing_twice() -> None:
    obs = series([5.0] * 3)
    state, first = replay(METRIC, obs)
    again, second = step(METRIC, state, obs[-1])
    assert [n.kind for n in first] == ["firing"] and second == [] and again == state


def test_state_survives_its_json_form() -> None:
    state, _ = replay(METRIC, series([5.0] * 4 + [0.5]))
    assert AlertState.from_json(state.to_json()) == state
