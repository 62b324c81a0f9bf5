"""Anomaly: the metrics catalog over the hot and warm tiers, alerts, and materialized values (HTTP).

Entry point ``anomaly``. Private: Cloud Scheduler calls it with an OIDC token every 15 minutes,
and Cloud Run checks the token. ``POST`` a JSON body (empty means ``evaluate``):

* ``{"action": "evaluate"}`` (optionally ``"metrics": ["name", …]``): evaluate the catalog at
  every evaluation time since the last run, move each metric's alert, send what is due to the
  webhook (``TELEMETRY_ALERT_WEBHOOK_URL``) and the ``telemetry-alerts`` topic, and retry what
  earlier runs could not send;
* ``{"action": "materialize", "days_back": 2}`` (hourly): refresh each metric's PostgreSQL
  materialized view (what Grafana reads) and write the last whole days of values as Parquet to
  ``gs://BUCKET/analytics/metrics/metric_date=YYYY-MM-DD/``;
* ``{"action": "status"}``: each metric's alert state;
* ``{"action": "canary", "count": 1000}`` (weekly): replay the newest warm-tier events into
  ``TELEMETRY_CANARY_TARGET`` as canary traffic, wait until they land, and compare per-name
  counts and the catalog's values (``shared/metrics/canary.py``); the answer lists every
  difference, and a run with differences logs an ERROR line.

Answers 200 with the run's report (a metric that failed to evaluate is reported, with its own
``eval_failed`` alert, and never stops the others), 400 naming what is wrong with the request,
503 with ``Retry-After`` when PostgreSQL cannot be reached, 500 otherwise.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import flask
import functions_framework
import msgspec

from shared.http import Answer, action_name, answer_request, decode_action, failure_answer

if TYPE_CHECKING:  # imported where used: a cold start loads only the web framework
    from shared.metrics.run import AnomalyRun

logger = logging.getLogger("anomaly")
#: How long the canary waits for its events to land (the function's timeout is longer).
CANARY_TIMEOUT_S = 300.0
_lock = threading.Lock()
_run: AnomalyRun | None = None


def get_run() -> AnomalyRun:
    """The instance's anomaly run, built on first use."""
    global _run
    if _run is None:
        with _lock:
            if _run is None:
                from shared.metrics.run import anomaly_from_settings
                from shared.observability.log import configure_logging
                from shared.settings import get_settings

                settings = get_settings()
                configure_logging(settings.telemetry_log_level)
                _run = anomaly_from_settings(settings)
    return _run


class Evaluate(msgspec.Struct, tag_field="action", tag="evaluate", forbid_unknown_fields=True):
    """Evaluate the catalog's metrics (or the ones named) and alert on drift."""

    metrics: list[str] | None = None


class Materialize(
    msgspec.Struct, tag_field="action", tag="materialize", forbid_unknown_fields=True
):
    """Write the daily metric tables of the last ``days_back`` days."""

    days_back: Annotated[int, msgspec.Meta(ge=0, le=30)] = 2


class Status(msgspec.Struct, tag_field="action", tag="status", forbid_unknown_fields=True):
    """Each metric's alert state."""


class Canary(msgspec.Struct, tag_field="action", tag="canary", forbid_unknown_fields=True):
    """Send ``count`` canary events through the target's ingest and compare what lands."""

    count: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 1000


def _evaluate(body: Evaluate) -> Answer:
    run = get_run()
    if body.metrics is not None:
        unknown = sorted(set(body.metrics) - {m.name for m in run.catalog})
        if unknown:
            return Answer(400, {"error": f"unknown metrics: {', '.join(unknown)[:200]}"})
    return Answer(200, run.run(names=body.metrics).to_json())


def _materialize(body: Materialize) -> Answer:
    from shared.settings import get_settings
    from shared.storage.gcs import get_storage_client

    settings = get_settings()
    bucket = get_storage_client(settings).bucket(settings.telemetry_bucket)
    return Answer(200, get_run().materialize(bucket, body.days_back).to_json())


def _status(_body: Status) -> Answer:
    states = get_run().store.states()
    return Answer(200, {"alerts": {name: s.to_json() for name, s in sorted(states.items())}})


def _canary(body: Canary) -> Answer:
    from shared.metrics.canary import run_canary
    from shared.settings import get_settings

    settings = get_settings()
    if not settings.telemetry_canary_target:
        return Answer(400, {"error": "set TELEMETRY_CANARY_TARGET to the target's ingest URL"})
    database = settings.telemetry_canary_target_database_url
    report = run_canary(
        settings,
        settings.telemetry_canary_target,
        database.get_secret_value() if database else None,
        body.count,
        timeout_s=CANARY_TIMEOUT_S,
        progress=lambda line: logger.info("canary progress", extra={"detail": line}),
    )
    if report.differences:
        logger.error(
            "canary found differences",
            extra={"differences": len(report.differences), "landed": report.landed},
        )
    return Answer(200, report.to_json())


ACTIONS: dict[type[Any], Callable[[Any], Answer]] = {
    Evaluate: _evaluate,
    Materialize: _materialize,
    Status: _status,
    Canary: _canary,
}


def handle(method: str, body: bytes) -> Answer:
    """Run the action a request names (an empty body evaluates); never raises."""
    request = decode_action(method, body, list(ACTIONS), default=Evaluate)
    if isinstance(request, Answer):
        return request
    try:
        return ACTIONS[type(request)](request)
    except Exception as exc:
        from shared.storage.failures import classify_failure

        return failure_answer(
            "anomaly",
            action_name(request),
            classify_failure(exc),
            logger,
            "the next run catches up",
        )


@functions_framework.http
def anomaly(request: flask.Request) -> Any:
    """Run one anomaly action."""
    from shared.settings import get_settings

    return answer_request(request, handle, get_settings().google_cloud_project)


def reset() -> None:
    """Forget the run (tests change settings between cases)."""
    global _run
    with _lock:
        _run = None
