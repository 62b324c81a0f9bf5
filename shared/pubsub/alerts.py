"""Alerts on the ``telemetry-alerts`` topic: one JSON message per alert.

The lifecycle publishes here when it must keep something it would otherwise remove (a hot
partition the warm tier does not hold yet); the anomaly function adds its metric alerts.
A message never carries a property value or a raw identifier.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from shared.observability.alerts import AlertSend, Severity
from shared.pubsub import resources
from shared.pubsub.publisher import topic_path
from shared.pubsub.rpc import PublishRpc, publish_rpc
from shared.settings import Settings


def alert_body(
    alert: str, severity: Severity, summary: str, details: Mapping[str, Any]
) -> dict[str, Any]:
    """The message body of an alert."""
    return {
        "alert": alert,
        "severity": severity,
        "summary": summary,
        "details": dict(details),
        "at": datetime.now(UTC).isoformat(),
    }


def alert_sender(settings: Settings, rpc: PublishRpc | None = None) -> AlertSend:
    """A function that publishes an alert to the alerts topic within the publish timeout."""
    path = topic_path(settings, resources.TOPIC_ALERTS)

    def send(alert: str, severity: Severity, summary: str, details: Mapping[str, Any]) -> None:
        data = orjson.dumps(alert_body(alert, severity, summary, details))
        attributes = {"alert": alert, "severity": severity}
        (rpc or publish_rpc()).send(
            path, [(data, attributes)], settings.telemetry_publish_timeout_s
        )

    return send
