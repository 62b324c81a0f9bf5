"""Names of the Pub/Sub resources and functions that other code, Terraform and people rely on."""

from __future__ import annotations

TOPIC_EVENTS = "telemetry-events"
SUBSCRIPTION_SINK = "telemetry-events-sink"
TOPIC_DLQ = "telemetry-events-dlq"
#: Pull subscription on the dead-letter topic, so dead-lettered messages are kept, not dropped.
SUBSCRIPTION_DLQ = "telemetry-events-dlq-hold"
TOPIC_ALERTS = "telemetry-alerts"
#: Deliveries before Pub/Sub dead-letters a message on its own (5 is Pub/Sub's minimum).
MAX_DELIVERY_ATTEMPTS = 5

#: Function name -> entry point trigger kind.
FUNCTIONS: dict[str, str] = {
    "ingest": "http",
    "sink": "cloudevent",
    "snapshot": "http",
    "lifecycle": "http",
    "anomaly": "http",
}
