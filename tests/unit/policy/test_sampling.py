from __future__ import annotations

import hashlib

import pytest

from shared.policy.sampling import SamplingPolicy, session_fraction


@pytest.mark.parametrize(
    ("session", "fraction"),
    [
        ("s-1", 0.012253782196995883),
        ("s-2", 0.11892632386878411),
        ("abc", 0.8466046359861451),
        ("ü-unicode", 0.5393639789092876),
        ("", 0.8931675160897388),
    ],
)
def test_session_fraction_is_pinned_across_processes_and_releases(
    session: str, fraction: float
) -> None:
    """Known outputs: a change of hash, byte order or scale would re-sample every session."""
    assert session_fraction(session) == fraction
    digest = hashlib.blake2b(session.encode("utf-8"), digest_size=8).digest()
    assert fraction == int.from_bytes(digest, "big") / 2**64


def test_decisions_are_pinned() -> None:
    policy = SamplingPolicy({"ui": 0.3})
    kept = [policy.decide(f"s-{i}", "ui")[0] for i in range(10)]
    assert kept == [True, True, True] + [False] * 7


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
