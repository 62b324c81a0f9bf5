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

The machine is pure: the live run keeps its state in PostgreSQL, the backtest in memory.
"""

from __future__ import annotations

import uuid
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

    @property
    def key(self) -> str:
        """Unique per metric, kind and evaluation time: the outbox's idempotency key."""
        return f"{self.metric}|{self.kind}|{self.at.isoformat()}"


def _alert_id(metric: Metric, at: datetime, what: str) -> str:
    return str(uuid.uuid5(_ALERT_IDS, f"{metric.name}|{metric.window}|{what}|{at.isoformat()}"))


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


def step(metric: Metric, state: AlertState, obs: Observation) -> tuple[AlertState, list[Notice]]:
    """The state after ``obs``, and what to send."""
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
        alert_id = _alert_id(metric, obs.at, "firing")
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
    metric: Metric, observations: list[Observation], state: AlertState | None = None
) -> tuple[AlertState, list[Notice]]:
    """Run the machine over ``observations`` in order (the backtest and the live catch-up)."""
    current = state or AlertState()
    sent: list[Notice] = []
    for obs in observations:
        current, notices = step(metric, current, obs)
        sent.extend(notices)
    return current, sent
