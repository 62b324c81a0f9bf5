from __future__ import annotations

from shared.sampling import SamplingPolicy, session_fraction


def test_decision_is_stable_per_session() -> None:
    policy = SamplingPolicy({"ui": 0.3})
    for session in ("s-1", "s-2", "abc", "ü-unicode"):
        decisions = {policy.decide(session, "ui") for _ in range(5)}
        assert len(decisions) == 1
    assert session_fraction("s-1") == session_fraction("s-1")
    assert 0.0 <= session_fraction("s-1") < 1.0


def test_kept_fraction_matches_the_rate() -> None:
    policy = SamplingPolicy({"ui": 0.2})
    kept = sum(policy.decide(f"session-{i}", "ui")[0] for i in range(20000))
    assert 0.18 < kept / 20000 < 0.22


def test_a_kept_session_is_kept_whole_across_categories_with_lower_rates() -> None:
    policy = SamplingPolicy({"ui": 0.2, "domain": 0.5})
    for i in range(2000):
        session = f"s-{i}"
        if policy.decide(session, "ui")[0]:
            assert policy.decide(session, "domain")[0]


def test_rates_are_reported_and_override_raises_everything() -> None:
    policy = SamplingPolicy({"ui": 0.2, "llm": 0.0})
    assert policy.decide("x", "domain") == (True, 1.0)
    assert policy.decide("x", "llm") == (False, 0.0)
    keep, rate = policy.decide("x", "ui")
    assert rate == 0.2 and keep == (session_fraction("x") < 0.2)
    incident = SamplingPolicy({"ui": 0.2, "llm": 0.0}, override=True)
    assert incident.decide("x", "ui") == (True, 1.0)
    assert incident.decide("x", "llm") == (True, 1.0)
