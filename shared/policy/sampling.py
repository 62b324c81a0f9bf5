"""Sampling: a stable per-session decision, with rates per category and an incident override.

A session is either kept whole or dropped whole: the decision hashes ``session_id`` into
[0, 1) and keeps the session when that is below the category's rate. Kept events carry their
``sample_rate`` so metrics can be re-weighted (an event kept at 0.2 stands for 5).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal, get_args

from shared.errors import ConfigurationError
from shared.settings import Settings, split_list

#: What kind of event a registry entry is; sampling rates are set per category.
Category = Literal["ui", "domain", "llm", "pipeline"]
CATEGORIES: tuple[str, ...] = get_args(Category)
#: Rates that differ from 1.0 per environment; every other category keeps every event.
DEFAULT_SAMPLE_RATES: dict[str, dict[str, float]] = {
    "dev": {},
    "staging": {},
    "prod": {"ui": 0.2},
}
_SCALE = float(2**64)


def parse_sample_rates(value: str) -> dict[str, float]:
    """Parse ``ui=0.2,domain=1`` into rates per category, each in [0, 1]."""
    rates: dict[str, float] = {}
    for part in split_list(value):
        category, sep, raw = part.partition("=")
        category = category.strip()
        if not sep or category not in CATEGORIES:
            raise ValueError(f"{part!r} is not <{'|'.join(CATEGORIES)}>=<rate>")
        try:
            rate = float(raw)
        except ValueError:
            raise ValueError(f"{raw!r} is not a number") from None
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate {rate} for {category} is outside [0, 1]")
        rates[category] = rate
    return rates


def sample_rates(settings: Settings) -> dict[str, float]:
    """The rate of every category for this environment: its defaults, then
    ``TELEMETRY_SAMPLE_RATES``; a bad value is a :class:`ConfigurationError` naming it."""
    rates = dict.fromkeys(CATEGORIES, 1.0)
    rates.update(DEFAULT_SAMPLE_RATES[settings.telemetry_env])
    if settings.telemetry_sample_rates:
        try:
            rates.update(parse_sample_rates(settings.telemetry_sample_rates))
        except ValueError as exc:
            raise ConfigurationError(
                f"invalid settings: TELEMETRY_SAMPLE_RATES: {exc}", ["TELEMETRY_SAMPLE_RATES"]
            ) from None
    return rates


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
