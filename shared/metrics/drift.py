"""How far a categorical distribution has moved from its baseline.

Jensen-Shannon divergence (base 2) is the default: it is symmetric, bounded to [0, 1] and
defined when a category is missing on one side. The population stability index is offered for
teams used to it; it needs a floor on empty categories, :data:`PSI_FLOOR`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal

#: The share given to a category absent on one side, so PSI stays finite.
PSI_FLOOR = 1e-4


def _shares(counts: Mapping[str, float], keys: list[str]) -> list[float]:
    total = sum(counts.get(k, 0.0) for k in keys)
    return [counts.get(k, 0.0) / total for k in keys]


def jensen_shannon(current: Mapping[str, float], baseline: Mapping[str, float]) -> float:
    """The Jensen-Shannon divergence (base 2) of two weighted category counts."""
    keys = sorted(set(current) | set(baseline))
    p, q = _shares(current, keys), _shares(baseline, keys)

    def kl(a: list[float], m: list[float]) -> float:
        return sum(x * math.log2(x / y) for x, y in zip(a, m, strict=True) if x > 0)

    mid = [(x + y) / 2 for x, y in zip(p, q, strict=True)]
    return max(0.0, (kl(p, mid) + kl(q, mid)) / 2)


def psi(current: Mapping[str, float], baseline: Mapping[str, float]) -> float:
    """The population stability index of two weighted category counts."""
    keys = sorted(set(current) | set(baseline))
    p = [max(x, PSI_FLOOR) for x in _shares(current, keys)]
    q = [max(x, PSI_FLOOR) for x in _shares(baseline, keys)]
    return sum((x - y) * math.log(x / y) for x, y in zip(p, q, strict=True))


def divergence(
    method: Literal["jensen_shannon", "psi"],
    current: Mapping[str, float],
    baseline: Mapping[str, float],
) -> float:
    """The drift of ``current`` from ``baseline`` by ``method``."""
    return (
        jensen_shannon(current, baseline) if method == "jensen_shannon" else psi(current, baseline)
    )
