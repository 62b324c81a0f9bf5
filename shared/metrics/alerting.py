"""The alert state machine: one alert per metric and window, that neither flaps nor stays silent.

Each evaluation moves a metric's :class:`AlertState` and may give :class:`Notice` s to send:

* **Firing** needs ``n`` breaching evaluations among the last ``m`` (warn or worse); it fires once,
  at the worst severity met ``n`` times, and escalates once if critical follows.
* **Resolving** needs ``keep_firing_for`` without a breach, so a value hovering at the threshold
  does not flip firing/resolved every evaluation (grafana#35539). A resolve is only ever sent for
  an alert that fired, and only once (grafana#66203's piles of stale resolves).
* **Cooldown**: after a resolve, a new breach waits ``cooldown`` before it fires again; it is not
  dropped: if it still breaches then, it fires.
* **No data** and **evaluation failed** are conditions of their own, each notified when it starts
  and when it ends, never silence. Too few observations (below the metric's minimum sample) hold
  the state as it is: no judgement either way.
* An evaluation time at or before the last one is ignored, so a rerun sends nothing twice.
* A grouped metric (``group_by``) runs one machine per group (:func:`replay_groups`): each
  group fires, escalates and resolves on its own, with its own N of M, ``keep_firing_for`` and
  cooldown, and its notices name the group (a pseudonym, never a raw identifier). At most
  ``max_groups`` groups fire per evaluation run, the worst first; the others wait, and the
  notices that are sent say how many more breach.

The machine is pure: the live run keeps its state in PostgreSQL, the backtest in memory.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from shared.metrics.catalog import Metric
from shared.metrics.evaluate import Observation

Level = Literal["ok", "warn", "critical"]
NoticeKind = Literal[
    "firing", "escalated", "resolved", "no_data", "data_back", "eval_failed", "eval_recovered"
]
_ALERT_IDS = uuid.UUID("6f1d0c1e-5a3b-4e0b-9d7e-2f6c8a4b1c00")


@dataclass(frozen=True)
class AlertState:
    """Where one metric's alert stands (stored as JSON)."""

    status: Literal["ok", "pending", "cooldown", "firing"] = "ok"
    severity: Literal["warn", "critical"] | None = None
    #: The levels of the last ``m`` judged evaluations, oldest first.
    history: tuple[Level, ...] = ()
    #: ``no_data`` or ``error`` while such a condition lasts.
    condition: Literal["no_data", "error"] | None = None
    last_eval_at: datetime | None = None
    last_breach_at: datetime | None = None
    fired_at: datetime | None = None
    resolved_at: datetime | None = None
    alert_id: str | None = None
    #: A grouped metric's state per group (its own fields then hold the metric's conditions).
    groups: Mapping[str, AlertState] = field(default_factory=dict)

    @property
    def firing(self) -> bool:
        """Whether the alert, or any group's, is firing."""
        return self.status == "firing" or any(s.status == "firing" for s in self.groups.values())

    def to_json(self) -> dict[str, Any]:
        """The state as stored."""
        out: dict[str, Any] = {
            "status": self.status,
            "severity": self.severity,
            "history": list(self.history),
            "condition": self.condition,
            "alert_id": self.alert_id,
        }
        for name in ("last_eval_at", "last_breach_at", "fired_at", "resolved_at"):
            value = getattr(self, name)
            out[name] = value.isoformat() if value else None
        if self.groups:
            out["groups"] = {group: state.to_json() for group, state in self.groups.items()}
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AlertState:
        """The state as stored by :meth:`to_json`."""
        times = {
            name: datetime.fromisoformat(data[name]) if data.get(name) else None
            for name in ("last_eval_at", "last_breach_at", "fired_at", "resolved_at")
        }
        return cls(
            status=data.get("status", "ok"),
            severity=data.get("severity"),
            history=tuple(data.get("history") or ()),
            condition=data.get("condition"),
            alert_id=data.get("alert_id"),
            groups={g: cls.from_json(s) for g, s in (data.get("groups") or {}).items()},
            **times,
        )


@dataclass(frozen=True)
class Notice:
    """One message to send about one metric's alert."""

    metric: str
    kind: NoticeKind
    at: datetime
    alert_id: str
    severity: Literal["info", "warning", "critical"]
    observation: Observation = field(compare=False)
    #: The group it is about (a grouped metric), and how many more groups breach than fired.
    group: str | None = None
    more_groups: int = 0

    @property
    def key(self) -> str:
        """Unique per metric, group, kind and evaluation time: the outbox's idempotency key."""
        group = f"{self.group}|" if self.group is not None else ""
        return f"{self.metric}|{group}{self.kind}|{self.at.isoformat()}"


def _alert_id(metric: Metric, at: datetime, what: str, group: str | None = None) -> str:
    scope = f"{metric.name}|{metric.window}" + (f"|{group}" if group is not None else "")
    return str(uuid.uuid5(_ALERT_IDS, f"{scope}|{what}|{at.isoformat()}"))


def _condition_notices(
    metric: Metric, state: AlertState, obs: Observation
) -> tuple[AlertState, list[Notice]]:
    """Open or close the no-data / evaluation-failed condition."""
    wanted: Literal["no_data", "error"] | None = (
        "error" if obs.status == "error" else "no_data" if obs.status == "no_data" else None
    )
    if wanted == state.condition:
        return state, []
    notices = []
    if state.condition is not None:
        kind: NoticeKind = "eval_recovered" if state.condition == "error" else "data_back"
        notices.append(Notice(metric.name, kind, obs.at, state.alert_id or "", "info", obs))
    alert_id = state.alert_id
    if wanted is not None:
        alert_id = _alert_id(metric, obs.at, wanted)
        kind = "eval_failed" if wanted == "error" else "no_data"
        notices.append(Notice(metric.name, kind, obs.at, alert_id, "warning", obs))
    return replace(state, condition=wanted, alert_id=alert_id), notices


def step(
    metric: Metric, state: AlertState, obs: Observation, group: str | None = None
) -> tuple[AlertState, list[Notice]]:
    """The state after ``obs``, and what to send (about ``group``, for a grouped metric)."""
    if state.last_eval_at is not None and obs.at <= state.last_eval_at:
        return state, []
    state = replace(state, last_eval_at=obs.at)
    state, notices = _condition_notices(metric, state, obs)
    if obs.status != "ok" or obs.value is None:
        return state, notices  # no data, failed, or too few observations: hold
    level = metric.thresholds.level(obs.value)
    history = (*state.history, level)[-metric.fire.m :]
    breaches = sum(1 for lv in history if lv != "ok")
    critical = sum(1 for lv in history if lv == "critical")
    state = replace(state, history=history)
    if level != "ok":
        state = replace(state, last_breach_at=obs.at)
    if state.status == "firing":
        if state.severity == "warn" and critical >= metric.fire.n:
            state = replace(state, severity="critical")
            notices.append(
                Notice(metric.name, "escalated", obs.at, state.alert_id or "", "critical", obs)
            )
        quiet_since = state.last_breach_at or state.fired_at or obs.at
        if level == "ok" and obs.at - quiet_since >= metric.keep_firing_td:
            notices.append(
                Notice(metric.name, "resolved", obs.at, state.alert_id or "", "info", obs)
            )
            state = replace(
                state, status="ok", severity=None, history=(), resolved_at=obs.at, fired_at=None
            )
        return state, notices
    if breaches >= metric.fire.n:
        if state.resolved_at is not None and obs.at < state.resolved_at + metric.cooldown_td:
            return replace(state, status="cooldown"), notices
        severity: Literal["warn", "critical"] = "critical" if critical >= metric.fire.n else "warn"
        alert_id = _alert_id(metric, obs.at, "firing", group)
        state = replace(
            state, status="firing", severity=severity, fired_at=obs.at, alert_id=alert_id
        )
        notices.append(
            Notice(
                metric.name,
                "firing",
                obs.at,
                alert_id,
                "critical" if severity == "critical" else "warning",
                obs,
            )
        )
        return state, notices
    return replace(state, status="pending" if breaches else "ok"), notices


def replay(
    metric: Metric,
    observations: list[Observation],
    state: AlertState | None = None,
    group: str | None = None,
) -> tuple[AlertState, list[Notice]]:
    """Run the machine over ``observations`` in order (the backtest and the live catch-up);
    with ``group``, one group's machine of a grouped metric, its notices naming it."""
    current = state or AlertState()
    sent: list[Notice] = []
    for obs in observations:
        current, notices = step(metric, current, obs, group)
        sent.extend(notices if group is None else [replace(n, group=group) for n in notices])
    return current, sent


def _settled(metric: Metric, state: AlertState) -> bool:
    """A group's state that holds nothing worth keeping (it would start over the same)."""
    if state.status != "ok" or any(level != "ok" for level in state.history):
        return False
    return state.resolved_at is None or (
        state.last_eval_at is not None
        and state.last_eval_at >= state.resolved_at + metric.cooldown_td
    )


def _worst_first(metric: Metric, value: float | None) -> float:
    if value is None:
        return 0.0
    return -value if metric.thresholds.direction == "above" else value


def replay_groups(
    metric: Metric,
    observations: Mapping[str, list[Observation]],
    states: Mapping[str, AlertState],
) -> tuple[dict[str, AlertState], list[Notice]]:
    """Run each group's machine over its observations; at most ``max_groups`` fire.

    Groups that would fire beyond the bound keep their previous state (they fire on a later
    run if they still breach), and the notices that are sent carry how many more breach.
    """
    moved: dict[str, tuple[AlertState, list[Notice]]] = {
        group: replay(metric, group_observations, states.get(group), group)
        for group, group_observations in observations.items()
    }
    firing = sorted(
        (g for g, (_, notices) in moved.items() if any(n.kind == "firing" for n in notices)),
        key=lambda g: _worst_first(
            metric, next(n for n in moved[g][1] if n.kind == "firing").observation.value
        ),
    )
    held = set(firing[metric.max_groups :])
    more = len(held)
    out_states: dict[str, AlertState] = {}
    sent: list[Notice] = []
    for group, (state, notices) in moved.items():
        if group in held:
            previous = states.get(group)
            if previous is not None:
                out_states[group] = previous
            continue
        if not _settled(metric, state):
            out_states[group] = state
        sent.extend(replace(n, more_groups=more) if n.kind == "firing" else n for n in notices)
    for group, state in states.items():  # groups with nothing observed keep their state
        if group not in observations and not _settled(metric, state):
            out_states[group] = state
    return out_states, sorted(sent, key=lambda n: (n.at, n.group or "", n.kind))
