"""What an alert says: the Slack-compatible webhook body and the topic message.

Both carry the value, the threshold, the window, ``n`` and the runbook link, and nothing else
of the data: no property value, no identifier. A grouped metric's alert names its group: a
pseudonym (``user_key``) or a name of ours (an operation, a model), never a raw identifier.
"""

from __future__ import annotations

from typing import Any

from shared.metrics.alerting import Notice
from shared.metrics.catalog import Metric

_TITLES = {
    "firing": "FIRING",
    "escalated": "ESCALATED",
    "resolved": "RESOLVED",
    "no_data": "NO DATA",
    "data_back": "DATA BACK",
    "eval_failed": "EVALUATION FAILED",
    "eval_recovered": "EVALUATION RECOVERED",
}


def _number(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"


def details(metric: Metric, notice: Notice, runbook_base: str) -> dict[str, Any]:
    """The alert's facts (the topic message's ``details``)."""
    obs = notice.observation
    thresholds = metric.thresholds
    out: dict[str, Any] = {
        "kind": notice.kind,
        "alert_id": notice.alert_id,
        "metric": metric.name,
        "value": obs.value,
        "unit": metric.unit,
        "threshold": thresholds.critical if notice.severity == "critical" else thresholds.warn,
        "thresholds": {"warn": thresholds.warn, "critical": thresholds.critical},
        "direction": thresholds.direction,
        "window": metric.window,
        "evaluated_at": notice.at.isoformat(),
        "n": obs.n,
        "runbook": runbook_base + metric.runbook,
        "dashboard": metric.dashboard,
    }
    if obs.error:
        out["error"] = obs.error
    if notice.group is not None:
        out["group_by"] = metric.group_by
        out["group"] = notice.group
        out["more_groups_breaching"] = notice.more_groups
    if metric.baseline:
        out["baseline"] = metric.baseline
    return out


def _subject(metric: Metric, notice: Notice) -> str:
    """The metric, and the group a grouped metric's alert is about."""
    if notice.group is None:
        return metric.name
    return f"{metric.name} for {metric.group_by} {notice.group[:16]}"


def _more(notice: Notice) -> str:
    return f"; {notice.more_groups} more breach (held back)" if notice.more_groups else ""


def summary(metric: Metric, notice: Notice) -> str:
    """One line: what happened to which metric, with its value and threshold."""
    facts = notice.observation
    title = _TITLES[notice.kind]
    severity = f" {notice.severity}" if notice.kind in ("firing", "escalated") else ""
    if notice.kind == "no_data":
        return f"[{title}] {metric.name}: no data over {metric.window}"
    if notice.kind == "data_back":
        return f"[{title}] {metric.name}: data again over {metric.window}"
    if notice.kind == "eval_failed":
        return f"[{title}] {metric.name} could not be evaluated ({facts.error or 'unknown error'})"
    if notice.kind == "eval_recovered":
        return f"[{title}] {metric.name} evaluates again"
    thresholds = metric.thresholds
    limit = thresholds.critical if notice.severity == "critical" else thresholds.warn
    relation = ">" if thresholds.direction == "above" else "<"
    unit = f"x its {metric.baseline} baseline" if metric.baseline else metric.unit
    limit_unit = "x" if metric.baseline else metric.unit
    return (
        f"[{title}{severity}] {_subject(metric, notice)} = {_number(facts.value)} {unit} "
        f"(threshold {relation} {_number(limit)} {limit_unit}) over {metric.window}, "
        f"n={facts.n}" + _more(notice)
    )


def slack_body(metric: Metric, notice: Notice, runbook_base: str) -> dict[str, Any]:
    """A Slack incoming-webhook body (``text`` for notifications, blocks for the channel)."""
    line = summary(metric, notice)
    facts = details(metric, notice, runbook_base)
    return {
        "text": line,
        "blocks": [
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"*{line}*\n{metric.description}"},
            },
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": (
                            f"runbook: <{facts['runbook']}|{metric.runbook}> · dashboard: "
                            f"{metric.dashboard} · owner: {metric.owner} · alert {notice.alert_id}"
                        ),
                    }
                ],
            },
        ],
    }
