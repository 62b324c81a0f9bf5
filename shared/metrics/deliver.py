"""Sending queued alert notices: the webhook and the ``telemetry-alerts`` topic.

Each (notice, channel) is tried with exponential backoff in its own worker, so a webhook that is
down delays nothing else and every other alert still goes out. What still fails stays queued in
the outbox and is tried again by the next run: at-least-once, never dropped.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, cast

import requests
from tenacity import Retrying, stop_after_attempt, wait_exponential

from shared.metrics.store import AlertStore, Channel, OutboxRow
from shared.observability.alerts import AlertSend, Severity

logger = logging.getLogger(__name__)
#: Seconds a webhook call may take.
WEBHOOK_TIMEOUT_S = 10.0


class WebhookRefused(RuntimeError):
    """The webhook answered with an error status."""


@dataclass
class DeliveryReport:
    """What one delivery round sent, and what stays queued."""

    sent: dict[str, int] = field(default_factory=lambda: {"webhook": 0, "topic": 0})
    failed: dict[str, int] = field(default_factory=lambda: {"webhook": 0, "topic": 0})

    def to_json(self) -> dict[str, Any]:
        """The report as JSON."""
        return {"sent": dict(self.sent), "failed": dict(self.failed)}


class Deliverer:
    """Sends the outbox's pending notices on their channels."""

    def __init__(
        self,
        store: AlertStore,
        send_alert: AlertSend,
        webhook_url: str | None,
        attempts: int = 4,
        max_wait_s: float = 4.0,
        workers: int = 8,
        session: requests.Session | None = None,
    ) -> None:
        self.store = store
        self.send_alert = send_alert
        self.webhook_url = webhook_url
        self.attempts = attempts
        self.max_wait_s = max_wait_s
        self.workers = workers
        self.session = session or requests.Session()

    def _webhook(self, row: OutboxRow) -> None:
        if self.webhook_url is None:
            return  # unset: the topic only
        answer = self.session.post(
            self.webhook_url, json=row.body["webhook"], timeout=WEBHOOK_TIMEOUT_S
        )
        if answer.status_code >= 300:
            raise WebhookRefused(f"webhook answered {answer.status_code}")

    def _topic(self, row: OutboxRow) -> None:
        topic = row.body["topic"]
        severity = cast(Severity, row.severity)  # written from a Notice's severity
        self.send_alert(row.metric, severity, topic["summary"], topic["details"])

    def _send(self, row: OutboxRow, channel: Channel) -> str | None:
        """Deliver on one channel with backoff; the error type when every attempt failed."""
        action = self._webhook if channel == "webhook" else self._topic
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=0.25, max=self.max_wait_s),
            reraise=True,
        )
        try:
            retrying(action, row)
        except Exception as exc:
            logger.warning(
                "alert delivery failed; queued for the next run",
                extra={
                    "metric": row.metric,
                    "kind": row.kind,
                    "channel": channel,
                    "alert_id": row.alert_id,
                    "error": f"{type(exc).__name__}: {exc}"[:200],
                },
            )
            return f"{channel}: {type(exc).__name__}"
        self.store.mark_sent(row.id, channel)
        logger.info(
            "alert sent",
            extra={
                "metric": row.metric,
                "kind": row.kind,
                "channel": channel,
                "alert_id": row.alert_id,
            },
        )
        return None

    def deliver(self) -> DeliveryReport:
        """Send every pending notice on every channel it still needs."""
        report = DeliveryReport()
        jobs = [(row, channel) for row in self.store.pending() for channel in row.pending]
        if not jobs:
            return report
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            results = list(pool.map(lambda job: (job, self._send(*job)), jobs))
        failures: dict[int, list[str]] = {}
        for (row, channel), error in results:
            if error is None:
                report.sent[channel] += 1
            else:
                report.failed[channel] += 1
                failures.setdefault(row.id, []).append(error)
        for row_id, errors in failures.items():
            self.store.mark_failed(row_id, "; ".join(errors))
        return report
