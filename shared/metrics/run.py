"""One anomaly run: evaluate every metric of the catalog, move its alert, send what is due.

A metric is evaluated at each of its evaluation times since the last run (up to ``m`` of them,
so N of M has its history after a pause), its alert state is moved under a row lock, and the
notices go to the outbox in the same transaction. A metric that cannot be evaluated is recorded
as ``evaluation failed`` (its own notice) and never stops the others. Delivery comes last and
also retries what earlier runs could not send.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from shared.contract.registry.loader import Registry
from shared.metrics import messages
from shared.metrics.alerting import AlertState, Notice, replay, replay_groups
from shared.metrics.catalog import Catalog, Metric
from shared.metrics.deliver import Deliverer, DeliveryReport
from shared.metrics.evaluate import (
    DuckDbRunner,
    Evaluator,
    GroupedEvaluation,
    Observation,
    PostgresRunner,
    SqlRunner,
    failed,
    grid_for,
    latest_time,
)
from shared.metrics.materialize import MaterializeReport, refresh_views, write_days
from shared.metrics.store import AlertStore, Channel
from shared.settings import Settings
from shared.storage.layout import Tier

logger = logging.getLogger(__name__)


@dataclass
class MetricOutcome:
    """One metric in a run: its newest observation, its alert, and what it queued."""

    metric: str
    #: None when every evaluation time up to now was already judged (a rerun within one grain).
    observation: Observation | None
    alert: AlertState
    queued: int

    @property
    def failed(self) -> bool:
        """Whether the metric could not be evaluated."""
        return self.observation is not None and self.observation.status == "error"

    def to_json(self) -> dict[str, Any]:
        """The outcome as JSON."""
        return {
            "metric": self.metric,
            **(self.observation.to_json() if self.observation else {"status": "unchanged"}),
            "alert": "firing" if self.alert.firing else self.alert.status,
            "severity": self.alert.severity,
            "condition": self.alert.condition,
            "queued": self.queued,
            **(
                {"groups_firing": sorted(g for g, s in self.alert.groups.items() if s.firing)}
                if self.alert.groups
                else {}
            ),
        }


@dataclass
class RunReport:
    """A whole run."""

    outcomes: list[MetricOutcome] = field(default_factory=list)
    delivery: DeliveryReport = field(default_factory=DeliveryReport)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """The report as JSON (the function's answer)."""
        return {
            "metrics": [o.to_json() for o in self.outcomes],
            "failed": sum(1 for o in self.outcomes if o.failed),
            "firing": sorted(o.metric for o in self.outcomes if o.alert.firing),
            "delivery": self.delivery.to_json(),
            "seconds": round(self.seconds, 3),
        }


RunnerFactory = Callable[[Tier], SqlRunner]


def runner_factory(settings: Settings, engine: Engine, registry: Registry) -> RunnerFactory:
    """Runners per source, each made once: PostgreSQL for the hot tier, DuckDB's views for the
    warm tier and both."""
    made: dict[str, SqlRunner] = {}

    def runner(source: Tier) -> SqlRunner:
        if source not in made:
            if source == "hot":
                made[source] = PostgresRunner(engine)
            else:
                from shared.storage.warm.query import open_views

                made[source] = DuckDbRunner(open_views(settings, engine, registry, source))
        return made[source]

    return runner


class AnomalyRun:
    """Evaluates the catalog and alerts on it."""

    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        registry: Registry,
        store: AlertStore,
        deliverer: Deliverer,
        runners: RunnerFactory,
        probes: Mapping[str, Callable[[], float | None]],
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.registry = registry
        self.store = store
        self.deliverer = deliverer
        self.runners = runners
        self.probes = probes

    def channels(self, metric: Metric) -> tuple[Channel, ...]:
        """The metric's channels in force (no webhook configured: the topic only)."""
        return tuple(
            c for c in metric.channels if c != "webhook" or self.deliverer.webhook_url is not None
        )

    @staticmethod
    def _due(metric: Metric, state: AlertState, now: datetime) -> tuple[datetime, datetime]:
        """The evaluation times not judged yet, up to ``now`` (at most ``m`` of them): first
        and last (first after last: none)."""
        latest = latest_time(metric, now)
        start = latest - metric.grain_td * (metric.fire.m - 1)
        if state.last_eval_at is not None:
            start = max(start, state.last_eval_at + metric.grain_td)
        return start, latest

    def _observe(self, metric: Metric, state: AlertState, now: datetime) -> list[Observation]:
        start, latest = self._due(metric, state, now)
        if start > latest:
            return []
        try:
            evaluator = Evaluator(self.runners(metric.source), self.registry)
            return evaluator.evaluate(
                metric, grid_for(metric, start, latest), self.probes.get(metric.probe or "")
            )
        except Exception as exc:
            # Never relabelled: the type goes into the notice, the traceback into the log.
            logger.exception("metric evaluation failed", extra={"metric": metric.name})
            return [failed(latest, exc)]

    def _observe_groups(
        self, metric: Metric, state: AlertState, now: datetime
    ) -> dict[str, list[Observation]] | list[Observation]:
        """A grouped metric's observations per group, or (it could not be evaluated) the
        failure as the metric's own observation."""
        start, latest = self._due(metric, state, now)
        if start > latest:
            return {}
        try:
            grouped = GroupedEvaluation(
                Evaluator(self.runners(metric.source), self.registry), metric
            )
            return grouped.evaluate(grid_for(metric, start, latest), state.groups.keys())
        except Exception as exc:
            logger.exception("metric evaluation failed", extra={"metric": metric.name})
            return [failed(latest, exc)]

    def _run_grouped(
        self, metric: Metric, state: AlertState, now: datetime
    ) -> tuple[AlertState, list[Notice], Observation | None]:
        """Move each group's alert (and the metric's own evaluation-failed condition)."""
        observed = self._observe_groups(metric, state, now)
        if isinstance(observed, list):  # the evaluation failed: the metric's condition
            new_state, notices = replay(metric, observed, state)
            return new_state, notices, observed[-1]
        if not observed:
            return state, [], None
        groups, notices = replay_groups(metric, observed, state.groups)
        last = max(obs[-1].at for obs in observed.values())
        recovered: list[Notice] = []
        if state.condition is not None:  # evaluates again: close the condition
            probe = Observation(last, "insufficient", None, 0)
            state, recovered = replay(metric, [probe], state)
        new_state = replace(state, last_eval_at=last, groups=groups)
        judged = [o[-1] for o in observed.values() if o[-1].status == "ok"]
        newest = Observation(last, "ok" if judged else "insufficient", None, len(judged))
        return new_state, recovered + notices, newest

    def run_metric(self, metric: Metric, now: datetime) -> MetricOutcome:
        """Evaluate one metric and move its alert (a grouped metric: each group's)."""
        with self.store.locked(metric) as (conn, state):
            if metric.group_by is not None:
                new_state, notices, newest = self._run_grouped(metric, state, now)
                if newest is None:
                    return MetricOutcome(metric.name, None, state, 0)
                queued = self.store.save(
                    conn, metric, new_state, [self._queued(metric, n) for n in notices]
                )
                return MetricOutcome(metric.name, newest, new_state, queued)
            observations = self._observe(metric, state, now)
            if not observations:
                return MetricOutcome(metric.name, None, state, 0)
            new_state, notices = replay(metric, observations, state)
            queued = self.store.save(
                conn, metric, new_state, [self._queued(metric, n) for n in notices]
            )
        for notice in notices:
            logger.info(
                "alert notice",
                extra={"metric": metric.name, "kind": notice.kind, "alert_id": notice.alert_id},
            )
        return MetricOutcome(metric.name, observations[-1], new_state, queued)

    def _queued(
        self, metric: Metric, notice: Notice
    ) -> tuple[Notice, tuple[Channel, ...], dict[str, Any]]:
        base = self.settings.telemetry_runbook_base_url
        body = {
            "webhook": messages.slack_body(metric, notice, base),
            "topic": {
                "summary": messages.summary(metric, notice),
                "details": messages.details(metric, notice, base),
            },
        }
        return notice, self.channels(metric), body

    def materialize(
        self, bucket: Any, days_back: int = 2, now: datetime | None = None
    ) -> MaterializeReport:
        """Refresh the metric views, and write the last ``days_back`` whole days (UTC) of
        values to the warm tier (a day rewritten only when its values changed)."""
        today = (now or datetime.now(UTC)).date()
        report = MaterializeReport()
        report.views = refresh_views(self.store.engine, self.catalog, self.registry)
        evaluator = Evaluator(self.runners("both"), self.registry)
        days = [today - timedelta(days=k) for k in range(days_back, 0, -1)]
        report.days = write_days(bucket, self.catalog, evaluator, days)
        return report

    def run(self, now: datetime | None = None, names: list[str] | None = None) -> RunReport:
        """Evaluate the catalog (or the metrics ``names``), then deliver what is queued."""
        started = time.perf_counter()
        now = now or datetime.now(UTC)
        report = RunReport()
        for metric in self.catalog:
            if names and metric.name not in names:
                continue
            report.outcomes.append(self.run_metric(metric, now))
        report.delivery = self.deliverer.deliver()
        report.seconds = time.perf_counter() - started
        logger.info(
            "anomaly run",
            extra={
                "metrics": len(report.outcomes),
                "failed": sum(1 for o in report.outcomes if o.failed),
                "firing": sum(1 for o in report.outcomes if o.alert.firing),
                "delivery": report.delivery.to_json(),
                "seconds": round(report.seconds, 3),
            },
        )
        return report


def anomaly_from_settings(
    settings: Settings, catalog: Catalog | None = None, engine: Engine | None = None
) -> AnomalyRun:
    """The deployment's anomaly run: the process-wide engine, the shipped catalog and registry,
    the alerts topic and the configured webhook."""
    from shared.contract.registry import default_registry
    from shared.metrics.catalog import default_catalog
    from shared.metrics.probes import probes
    from shared.pubsub.alerts import alert_sender
    from shared.storage.hot.engine import get_engine

    engine = engine or get_engine()
    registry = default_registry()
    store = AlertStore(engine)
    deliverer = Deliverer(store, alert_sender(settings), settings.alert_webhook_url)
    return AnomalyRun(
        settings,
        catalog or default_catalog(),
        registry,
        store,
        deliverer,
        runner_factory(settings, engine, registry),
        probes(settings, engine),
    )
