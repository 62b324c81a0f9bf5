"""Fair rate limits at the public endpoint: token buckets per sender, per origin, per instance.

Ingest is public: anyone with the page's JavaScript can send to it. Each instance keeps token
buckets (tokens are events; a bucket refills at ``rate`` events per second up to ``burst``):

* per **session** (the beacon's ``context.session_id``) and per **client IP** (the sender keys);
* per **origin** (the page's site), so one site cannot take a whole instance;
* one **instance** budget, what the instance can process (the capacity model's figure);
* per **OTLP token**, for ``/v1/traces`` (spans are the tokens there).

A request is admitted only when every bucket it draws on holds its events; then each pays
them. A refused request is answered 429 with ``Retry-After`` (the time until its own bucket
holds the events again), and its events are counted by reason, never stored.

**Refusals run into debt.** A sender's bucket that refuses is charged anyway, down to
``-burst``: a client that honours ``Retry-After`` waits out the debt and is admitted again, but
one that keeps sending at many times its share stays refused after its first burst, instead
of getting a fresh trickle every second. Only the sender keys (session, IP) run into debt; the
origin and instance buckets protect capacity and never punish.

**Bounded memory.** Each table keeps at most ``max_keys`` buckets, least recently used
forgotten first (about 250 bytes each). A forgotten key starts again with a full bucket, so the
documented error is: a key is forgotten only after ``max_keys`` other keys of its table were
seen since its last request. A flood of distinct session ids cannot reset the IP bucket they
share, since IPs have their own table.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from shared.observability.alerts import AlertSend
from shared.policy.privacy import Pseudonymiser
from shared.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limit:
    """A bucket's refill rate (events per second) and size (burst)."""

    rate: float
    burst: float

    def __post_init__(self) -> None:
        if not (self.rate > 0 and self.burst >= 1):
            raise ValueError(f"a limit needs rate > 0 and burst >= 1, not {self}")


class BucketTable:
    """Token buckets by key, at most ``max_keys`` of them (least recently used forgotten).

    Not thread-safe on its own: :class:`RateLimiter` holds one lock over all its tables.
    """

    def __init__(self, limit: Limit, max_keys: int, debt: bool) -> None:
        self.limit = limit
        self.max_keys = max_keys
        self.debt = debt
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        #: Keys forgotten to keep the bound, since the table was made.
        self.forgotten = 0

    def __len__(self) -> int:
        return len(self._buckets)

    def tokens(self, key: str, now: float) -> float:
        """The key's tokens at ``now`` (a full bucket for a key never seen or forgotten)."""
        found = self._buckets.get(key)
        if found is None:
            return self.limit.burst
        tokens, updated = found
        return min(self.limit.burst, tokens + (now - updated) * self.limit.rate)

    def wait_s(self, key: str, cost: float, now: float) -> float:
        """Seconds until the key's bucket holds ``cost`` tokens (0 when it does now)."""
        missing = min(cost, self.limit.burst) - self.tokens(key, now)
        return max(0.0, missing / self.limit.rate)

    def charge(self, key: str, cost: float, now: float) -> None:
        """Take ``cost`` tokens (a refused charge only where debt is allowed, to ``-burst``)."""
        floor = -self.limit.burst if self.debt else 0.0
        self._buckets[key] = (max(floor, self.tokens(key, now) - cost), now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
            self.forgotten += 1


@dataclass(frozen=True)
class Refusal:
    """Why a request was refused: the bucket's name (its reason) and when to come back."""

    reason: str
    retry_after_s: int


@dataclass(frozen=True)
class Keys:
    """The keys one request draws on (``None``: that bucket does not apply)."""

    origin: str | None = None
    ip: str | None = None
    session: str | None = None
    token: str | None = None


@dataclass(frozen=True)
class RateLimits:
    """The limits of one instance (from the settings)."""

    session: Limit
    ip: Limit
    origin: Limit
    instance: Limit
    otlp_token: Limit
    max_keys: int


def rate_limits(settings: Settings) -> RateLimits:
    """The instance's limits, as the settings give them."""
    return RateLimits(
        session=Limit(settings.telemetry_rate_session_eps, settings.telemetry_rate_session_burst),
        ip=Limit(settings.telemetry_rate_ip_eps, settings.telemetry_rate_ip_burst),
        origin=Limit(settings.telemetry_rate_origin_eps, settings.telemetry_rate_origin_burst),
        instance=Limit(
            settings.telemetry_rate_instance_eps, settings.telemetry_rate_instance_burst
        ),
        otlp_token=Limit(
            settings.telemetry_rate_otlp_token_sps, settings.telemetry_rate_otlp_token_burst
        ),
        max_keys=settings.telemetry_rate_max_keys,
    )


class RateLimiter:
    """The instance's buckets; :meth:`admit` decides a request, thread-safe."""

    def __init__(self, limits: RateLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.clock = clock
        self._lock = threading.Lock()
        self.tables = {
            "session": BucketTable(limits.session, limits.max_keys, debt=True),
            "ip": BucketTable(limits.ip, limits.max_keys, debt=True),
            "origin": BucketTable(limits.origin, limits.max_keys, debt=False),
            "otlp_token": BucketTable(limits.otlp_token, limits.max_keys, debt=False),
            "instance": BucketTable(limits.instance, 1, debt=False),
        }

    def _drawn(self, keys: Keys) -> list[tuple[str, str]]:
        """``(table, key)`` of every bucket a request with ``keys`` draws on, narrowest first."""
        drawn = [
            (name, key)
            for name, key in (
                ("session", keys.session),
                ("ip", keys.ip),
                ("otlp_token", keys.token),
                ("origin", keys.origin),
            )
            if key is not None
        ]
        drawn.append(("instance", ""))
        return drawn

    def admit(self, keys: Keys, cost: int) -> Refusal | None:
        """Admit a request of ``cost`` events (every bucket pays), or say which bucket refuses.

        A refusing sender bucket is charged all the same (its debt; see the module docstring).
        """
        cost = max(1, cost)
        now = self.clock()
        drawn = self._drawn(keys)
        with self._lock:
            for name, key in drawn:
                table = self.tables[name]
                if table.tokens(key, now) < min(cost, table.limit.burst):
                    if table.debt:
                        table.charge(key, cost, now)
                    return Refusal(name, max(1, math.ceil(table.wait_s(key, cost, now))))
            for name, key in drawn:
                self.tables[name].charge(key, cost, now)
        return None

    def sizes(self) -> dict[str, int]:
        """Buckets kept per table (each at most ``max_keys``)."""
        with self._lock:
            return {name: len(table) for name, table in self.tables.items()}

    def forgotten(self) -> dict[str, int]:
        """Keys each table has forgotten to keep its bound (a steady climb says
        ``max_keys`` is smaller than the senders an instance sees)."""
        with self._lock:
            return {name: table.forgotten for name, table in self.tables.items()}


class FloodWatch:
    """Senders (by IP) that take more than a share of the instance's budget in an interval.

    Ingest tells it of every request's events (admitted or refused); at the end of each summary
    interval, :meth:`flush` raises the ``ingest.sender_flood`` alert for each sender over the
    share, naming the sender's pseudonym (HMAC of the address under the active key), never the
    address. It keeps at most ``max_keys`` senders per interval (bounded memory; a sender first
    seen past that is counted from the next interval).
    """

    def __init__(
        self,
        settings: Settings,
        alert: AlertSend | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.share = settings.telemetry_rate_alert_share
        self.budget_eps = settings.telemetry_rate_instance_eps
        self.max_keys = settings.telemetry_rate_max_keys
        self.pseudonymiser = Pseudonymiser(settings.pseudonym_keys)
        self.alert = alert
        self.clock = clock
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._started = clock()

    def saw(self, sender: str | None, events: int) -> None:
        """Count a request's events for its sender."""
        if sender is None:
            return
        with self._lock:
            if sender in self._counts or len(self._counts) < self.max_keys:
                self._counts[sender] = self._counts.get(sender, 0) + max(1, events)

    def flush(self) -> list[str]:
        """Alert on the interval's flooding senders and start a new interval; their
        pseudonyms."""
        now = self.clock()
        with self._lock:
            counts, self._counts = self._counts, {}
            elapsed, self._started = max(now - self._started, 1e-9), now
        budget = self.budget_eps * elapsed
        flooding = []
        for sender, events in sorted(counts.items()):
            if events <= self.share * budget:
                continue
            pseudonym = self.pseudonymiser.pseudonym(sender)[1]
            flooding.append(pseudonym)
            logger.warning(
                "sender over its share of the instance",
                extra={"sender": pseudonym, "events": events, "share": round(events / budget, 3)},
            )
            if self.alert is not None:
                try:
                    self.alert(
                        "ingest.sender_flood",
                        "warning",
                        f"one sender ({pseudonym[:16]}) sent {events} events in {elapsed:.0f} s,"
                        f" {events / budget:.0%} of an instance's budget",
                        {"sender": pseudonym, "events": events, "share": round(events / budget, 3)},
                    )
                except Exception as exc:  # the log line above stands; the flood alerts again
                    logger.warning("alert not published", extra={"error_type": type(exc).__name__})
        return flooding
