"""Names of the Pub/Sub resources and functions that other code, Terraform and people rely on."""

from __future__ import annotations

TOPIC_EVENTS = "telemetry-events"
SUBSCRIPTION_SINK = "telemetry-events-sink"
TOPIC_DLQ = "telemetry-events-dlq"
#: Pull subscription on the dead-letter topic, so dead-lettered messages are kept, not dropped.
SUBSCRIPTION_DLQ = "telemetry-events-dlq-hold"
TOPIC_ALERTS = "telemetry-alerts"
#: Deliveries before Pub/Sub dead-letters a message on its own (Pub/Sub allows 5 to 100).
#: The sink dead-letters poison messages itself at once, so this only has to outlast outages:
#: with the backoff below, 100 attempts span about 15.7 hours (README, "Outages").
MAX_DELIVERY_ATTEMPTS = 100
#: Redelivery backoff of the sink subscription in production, seconds (minimum, maximum).
RETRY_BACKOFF_S = (10, 600)
#: The same locally, short enough for tests: 100 attempts span about 16 minutes.
LOCAL_RETRY_BACKOFF_S = (1, 10)

#: Function name -> entry point trigger kind.
FUNCTIONS: dict[str, str] = {
    "ingest": "http",
    "sink": "cloudevent",
    "snapshot": "http",
    "lifecycle": "http",
    "anomaly": "http",
}
