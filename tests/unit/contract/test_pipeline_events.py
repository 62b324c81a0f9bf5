"""The pipeline's own events: built by ingest, stored like any event, refused from clients."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import msgspec
import orjson
import pytest

from shared.contract.intake import Intake
from shared.contract.pipeline_events import ALL_REASONS, intake_events
from shared.contract.stored_check import StoredEventCheck
from shared.contract.validation import EventValidator
from shared.errors import ContractViolation
from shared.policy.privacy import Pseudonymiser
from shared.policy.sampling import SamplingPolicy
from shared.settings import DEV_PSEUDONYM_KEY, parse_keyring

NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)


def test_an_interval_becomes_a_totals_row_and_one_row_per_reason() -> None:
    counts = {"events": 120, "accepted": 100, "sampled_out": 12, "rejected": 8, "requests": 9}
    events = intake_events(counts, {"props.depth": 5, "ts": 2, "weird field!": 1}, NOW, "i1")
    rows = {e.props["reason"]: e.props for e in events}
    assert rows[ALL_REASONS] == {
        "reason": "all",
        "received": 120,
        "accepted": 100,
        "sampled_out": 12,
        "rejected": 8,
    }
    assert rows["props.depth"]["rejected"] == 5 and rows["props.depth"]["received"] == 0
    assert rows["weird_field_"]["rejected"] == 1  # a field name made safe, never a value
    check = StoredEventCheck()
    for event in events:
        check.decode(msgspec.json.encode(event))  # what the sink checks before it stores
        assert event.category == "pipeline" and event.sample_rate == 1.0


def test_a_quiet_interval_stores_nothing() -> None:
    assert intake_events({"requests": 3}, {}, NOW, "i1") == []


def test_a_client_sending_a_pipeline_event_is_refused_on_both_paths() -> None:
    """regression: clients must not forge the pipeline's own counts."""
    forged = {
        "event_id": str(uuid.uuid4()),
        "name": "pipeline.intake",
        "version": 1,
        "ts": NOW.isoformat(),
        "props": {"reason": "all", "received": 0, "accepted": 0, "sampled_out": 0, "rejected": 0},
    }
    with pytest.raises(ContractViolation, match="written by the pipeline itself"):
        EventValidator().validate_event(forged, {"session_id": "s-1"})
    intake = Intake(
        EventValidator(), SamplingPolicy({}), Pseudonymiser(parse_keyring(DEV_PSEUDONYM_KEY))
    )
    body = orjson.dumps({"context": {"session_id": "s-1"}, "events": [forged]})
    beacon = intake.read_beacon(body)
    assert beacon.fast  # the fast path hands the unknown-to-it event to the slow one
    result = intake.process_beacon(beacon, NOW)
    assert result.accepted == [] and len(result.rejected) == 1
    assert "written by the pipeline itself" in result.rejected[0].reason
