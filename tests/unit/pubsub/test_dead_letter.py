"""The dead-letter attributes, shared by the sink and the operator CLI."""

from __future__ import annotations

from shared.pubsub import dead_letter


def test_sink_attributes_replace_pubsubs_own_and_say_why() -> None:
    attributes = dead_letter.sink_attributes(
        {"source": "ingest", "CloudPubSubDeadLetterSourceDeliveryCount": "5"}, "x" * 2000, 3, "m-1"
    )
    assert attributes["source"] == "ingest"
    assert len(attributes["reason"]) == dead_letter.MAX_REASON_CHARS
    assert attributes["dead_lettered_by"] == "sink" and attributes["event_count"] == "3"
    assert not any(k.startswith("CloudPubSubDeadLetter") for k in attributes)
    assert not dead_letter.is_exhausted(attributes)


def test_exhausted_messages_are_pubsubs_and_replay_clean() -> None:
    held = {"source": "ingest", "CloudPubSubDeadLetterSourceSubscription": "s"}
    assert dead_letter.is_exhausted(held)
    assert dead_letter.reason_of(held) == dead_letter.EXHAUSTED_REASON
    assert dead_letter.replay_attributes(held) == {"source": "ingest", "replayed": "true"}
    assert dead_letter.reason_of({}) == "unknown"
