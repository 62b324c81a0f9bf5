"""Sending straight to Pub/Sub (the ``[pubsub]`` extra): for backends inside the deployment.

The events go through the same validation, sampling and pseudonymisation as the ingest
endpoint (the pipeline's own code, shipped in the wheel), then to the events topic with the
service account's credentials. Its dependencies (gRPC, google-auth) load when the transport is
built, never at ``import telemetry_client``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from telemetry_client.sender import SenderStats

logger = logging.getLogger("telemetry_client")


class PubSubTransport:
    """Validates, samples and pseudonymises like ingest, then publishes to the events topic."""

    def __init__(self, stats: SenderStats, settings: Any = None) -> None:
        from shared.contract.intake import Intake
        from shared.contract.validation import EventValidator
        from shared.policy.privacy import Pseudonymiser
        from shared.policy.sampling import SamplingPolicy, sample_rates
        from shared.pubsub.publisher import EventPublisher
        from shared.settings import Settings

        settings = settings or Settings.from_environment()
        self.stats = stats
        self.intake = Intake(
            EventValidator(),
            SamplingPolicy(sample_rates(settings)),
            Pseudonymiser(settings.pseudonym_keys),
        )
        self.publisher = EventPublisher(settings)
        # The channel now, while imports still work (the last flush may run at interpreter exit).
        self.publisher.connect()

    def send(self, events: list[dict[str, Any]]) -> None:
        """Publish the accepted events of a batch; count and log the rejected ones."""
        result = self.intake.process_events(events, {}, datetime.now(UTC))
        if result.rejected:
            self.stats.rejected += len(result.rejected)
            logger.warning(
                "telemetry events rejected", extra={"rejected_by_field": result.rejected_by_field()}
            )
        self.publisher.publish(result.accepted, "backend")
