"""Replaying the catalog over history: the alerts each metric would have sent, week by week.

The replay evaluates every evaluation time of the span in one query per measure over the
tiers' DuckDB views (the warm tier's files and the hot rows past the snapshot's watermark), and
runs the very state machine the live run uses, in memory. Gauges have no history and are left
out.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from shared.metrics.alerting import Notice, replay, replay_groups
from shared.metrics.catalog import Catalog, Metric
from shared.metrics.evaluate import Evaluator, GroupedEvaluation, Observation, grid_for


@dataclass
class MetricBacktest:
    """One metric's replay."""

    metric: Metric
    observations: list[Observation] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)

    def count(self, kind: str) -> int:
        """Notices of ``kind`` sent over the span."""
        return sum(1 for n in self.notices if n.kind == kind)

    def firing_per_week(self, start: datetime, end: datetime) -> dict[date, int]:
        """Firings per week of the span (weeks start on ``start``'s day)."""
        weeks: Counter[date] = Counter()
        day = start.date()
        while day < end.date() or not weeks:
            weeks[day] = 0
            day += timedelta(days=7)
        for notice in self.notices:
            if notice.kind == "firing":
                offset = (notice.at.date() - start.date()).days // 7
                weeks[start.date() + timedelta(days=7 * offset)] += 1
        return dict(sorted(weeks.items()))

    def to_json(self, start: datetime, end: datetime) -> dict[str, Any]:
        """The replay as JSON."""
        judged = [o for o in self.observations if o.status == "ok"]
        return {
            "metric": self.metric.name,
            "evaluations": len(self.observations),
            "judged": len(judged),
            "firing": self.count("firing"),
            "resolved": self.count("resolved"),
            "no_data": self.count("no_data"),
            "firing_per_week": {
                d.isoformat(): c for d, c in self.firing_per_week(start, end).items()
            },
            "notices": [
                {"kind": n.kind, "at": n.at.isoformat(), "severity": n.severity}
                | ({"group": n.group} if n.group is not None else {})
                for n in self.notices
            ],
        }


def backtest(
    catalog: Catalog, evaluator: Evaluator, start: datetime, end: datetime
) -> list[MetricBacktest]:
    """Replay every metric but the gauges from ``start`` to ``end``."""
    out = []
    for metric in catalog:
        if metric.kind == "gauge":
            continue
        # The first windows begin where the history does: no partial window is judged.
        first = start + metric.window_td
        if metric.drift:
            from shared.metrics.catalog import parse_duration

            first += parse_duration(metric.drift.baseline)
        if metric.baseline:
            from shared.metrics.catalog import parse_duration

            first += parse_duration(metric.baseline)
        grid = grid_for(metric, first, end)
        observations = evaluator.evaluate(metric, grid)
        if metric.group_by is not None:  # one machine per group, as the live run
            per_group = GroupedEvaluation(evaluator, metric).evaluate(grid)
            _, notices = replay_groups(metric, per_group, {})
        else:
            _, notices = replay(metric, observations)
        out.append(MetricBacktest(metric, observations, notices))
    return out
