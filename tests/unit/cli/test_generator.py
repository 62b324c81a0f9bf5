from __future__ import annotations

from datetime import UTC, datetime

from shared.contract.validation import EventValidator, TimeWindow
from telemetry_cli.generator import EventGenerator

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)


def test_same_seed_same_events() -> None:
    assert EventGenerator(seed=7, now=NOW).events(200) == EventGenerator(seed=7, now=NOW).events(
        200
    )
    assert EventGenerator(seed=7, now=NOW).events(50) != EventGenerator(seed=8, now=NOW).events(50)


def test_envelopes_are_batches_of_whole_sessions() -> None:
    bodies = list(EventGenerator(seed=3, now=NOW).envelopes(sessions=20, batch_size=10))
    assert all(1 <= len(b["events"]) <= 10 for b in bodies)
    sessions = {e["session_id"] for b in bodies for e in b["events"]}
    assert len(sessions) == 20


def test_generated_events_are_valid_and_in_the_time_window() -> None:
    validator = EventValidator()
    window = TimeWindow.around(NOW)
    events = EventGenerator(seed=11, now=NOW).events(2000)
    for raw in events:
        event = validator.validate_event(raw)
        window.check(event.ts)
    llm = [e for e in events if e["name"] == "llm.call"]
    assert llm and all(e["props"]["price_version"] for e in llm)
    costs = [e["props"]["cost_usd"] for e in llm if e["props"]["status"] == "ok"]
    assert all(c is not None and 0 <= c < 1 for c in costs)
