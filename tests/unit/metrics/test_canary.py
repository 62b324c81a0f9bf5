"""The canary's pure parts: its session, its re-keyed events, and what counts as a difference."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.contract.registry import default_registry
from shared.metrics.canary import (
    MIN_KEPT_RATE,
    Difference,
    canary_session,
    differs,
    wire_events,
)
from shared.policy.sampling import session_fraction


def test_the_canary_session_is_kept_by_sampling_at_any_rate_of_one_percent() -> None:
    session = canary_session("20261128T060000")
    assert session.startswith("canary-20261128T060000")
    assert session_fraction(session) < MIN_KEPT_RATE
    assert canary_session("20261128T060000") == session


def test_events_are_rekeyed_per_run_and_moved_to_now_keeping_their_spacing() -> None:
    registry = default_registry()
    at = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    rows = [
        {
            "table": "telemetry_events",
            "event_id": "00000000-0000-4000-8000-000000000001",
            "name": "node.expand",
            "version": 1,
            "at": at,
            "props_node_id": "n-1",
            "props_depth": 2.0,
            "conversation_id": "c-1",
            "user_key": "k" * 64,
        },
        {
            "table": "api_calls_log",
            "call_id": "00000000-0000-4000-8000-000000000002",
            "at": at + timedelta(seconds=30),
            "provider": "openai",
            "model": "gpt-4o",
            "operation": "summarise",
            "latency_ms": 12.5,
            "status": "ok",
            "input_tokens": 10,
            "cost_usd": None,
            "conversation_id": None,
            "user_key": None,
        },
    ]
    now = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)
    first = wire_events(rows, registry, "run-a", "canary-s", now)
    again = wire_events(rows, registry, "run-a", "canary-s", now)
    other = wire_events(rows, registry, "run-b", "canary-s", now)
    assert [e["event_id"] for e in first] == [e["event_id"] for e in again]
    assert {e["event_id"] for e in first}.isdisjoint(e["event_id"] for e in other)
    assert first[0]["event_id"] != rows[0]["event_id"]
    assert first[0]["props"] == {"node_id": "n-1", "depth": 2}  # an integer again
    assert isinstance(first[0]["props"]["depth"], int)
    assert first[1]["ts"] == "2026-11-28T05:59:00Z" and first[0]["ts"] == "2026-11-28T05:58:30Z"
    assert first[1]["name"] == "llm.call" and "cost_usd" not in first[1]["props"]
    assert first[0]["conversation_id"] == "canary-run-a-c-1"
    assert first[0]["user_id"].startswith("canary-") and "user_id" not in first[1]
    assert all(e["session_id"] == "canary-s" for e in first)


def test_what_counts_as_a_difference() -> None:
    assert not differs(1.0, 1.0 + 1e-9)
    assert differs(1.0, 1.01)
    assert not differs(None, None) and differs(None, 0.0) and differs(2.0, None)
    assert not differs({"1": 0.5, "2": 0.5}, {"1": 0.5, "2": 0.5})
    assert differs({"1": 0.9, "2": 0.1}, {"1": 0.1, "2": 0.9})
    assert str(Difference("count of x", 3, 2)) == "count of x: source 3, canary 2"


def test_a_run_id_that_cannot_name_a_session_is_refused_clearly() -> None:
    import pytest

    from shared.metrics.canary import CanaryFailed

    for bad in ("", "x'; DROP TABLE telemetry_events; --", "a" * 41, "sp ace"):
        with pytest.raises(CanaryFailed, match="use 1 to 40 letters"):
            canary_session(bad)
