"""Sampling: a stable per-session decision, with rates per category and an incident override.

A session is either kept whole or dropped whole: the decision hashes ``session_id`` into
[0, 1) and keeps the session when that is below the category's rate. Kept events carry their
``sample_rate`` so metrics can be re-weighted (an event kept at 0.2 stands for 5).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

_SCALE = float(2**64)


def session_fraction(session_id: str) -> float:
    """A stable number in [0, 1) for a session id, the same in every process and release."""
    digest = hashlib.blake2b(session_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


@dataclass(frozen=True)
class SamplingPolicy:
    """Rates per category; ``override`` (an incident) raises every rate to 1.0."""

    rates: dict[str, float] = field(default_factory=dict)
    override: bool = False

    def rate_for(self, category: str) -> float:
        """The rate in force for a category (1.0 for an unknown one: never lose data silently)."""
        if self.override:
            return 1.0
        return self.rates.get(category, 1.0)

    def decide(self, session_id: str, category: str) -> tuple[bool, float]:
        """``(keep, rate)`` for an event of this session and category."""
        rate = self.rate_for(category)
        if rate >= 1.0:
            return True, 1.0
        if rate <= 0.0:
            return False, 0.0
        return session_fraction(session_id) < rate, rate
