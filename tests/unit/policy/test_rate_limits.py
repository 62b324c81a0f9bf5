"""Token buckets: fair per sender, bounded in memory, refusals that say when to come back."""

from __future__ import annotations

import tracemalloc

import msgspec
import pytest

from shared.http import RequestProblem, client_ip
from shared.policy.rate_limits import (
    BucketTable,
    FloodWatch,
    Keys,
    Limit,
    RateLimiter,
    RateLimits,
    rate_limits,
)
from shared.settings import Settings, load_settings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limiter(clock: Clock, max_keys: int = 1000) -> RateLimiter:
    return RateLimiter(
        RateLimits(
            session=Limit(5, 60),
            ip=Limit(100, 500),
            origin=Limit(1000, 1000),
            instance=Limit(10_000, 10_000),
            otlp_token=Limit(100, 100),
            max_keys=max_keys,
        ),
        clock,
    )


def test_a_sender_within_its_burst_is_admitted_then_refused_with_when_to_come_back() -> None:
    clock = Clock()
    limits = limiter(clock)
    keys = Keys(origin="https://a", ip="10.0.0.1", session="s-1")
    assert limits.admit(keys, 50) is None
    refusal = limits.admit(keys, 20)  # 10 tokens left
    assert refusal is not None and refusal.reason == "session"
    # The refusal ran the bucket into debt: -10 tokens, 30 s until 20 are back at 5/s... at most
    # burst below zero; honouring Retry-After is admitted.
    clock.now += refusal.retry_after_s
    assert limits.admit(keys, 20) is None


def test_buckets_refill_at_their_rate() -> None:
    clock = Clock()
    limits = limiter(clock)
    keys = Keys(session="s-1")
    assert limits.admit(keys, 60) is None
    assert limits.admit(keys, 5) is not None
    clock.now += 60  # the refusal's debt (5) and the 5 wanted come back in 2 s; wait long
    assert limits.admit(keys, 5) is None


def test_a_sender_that_keeps_flooding_stays_refused_after_its_first_burst() -> None:
    """Refusals are charged to the sender: hammering at 50 times its rate never refills."""
    clock = Clock()
    limits = limiter(clock)
    keys = Keys(session="s-flood")
    admitted = 0
    for _ in range(3000):  # 60 s at 50 requests of 5 events a second: 250 events/s
        admitted += limits.admit(keys, 5) is None
        clock.now += 0.02
    assert admitted * 5 <= 60 + 5  # the first burst, and nothing after
    assert admitted * 5 / (3000 * 5) < 0.05


def test_rotating_session_ids_are_held_by_the_address_they_share() -> None:
    clock = Clock()
    limits = limiter(clock)
    refused = [limits.admit(Keys(ip="10.9.9.9", session=f"s-{n}"), 10) for n in range(200)]
    assert sum(r is None for r in refused) == 50  # the IP's burst of 500, 10 a request
    assert {r.reason for r in refused if r is not None} == {"ip"}
    assert limits.admit(Keys(ip="10.0.0.2", session="s-other"), 10) is None  # others unharmed


def test_the_origin_and_instance_budgets_protect_capacity_without_debt() -> None:
    clock = Clock()
    limits = limiter(clock)
    for n in range(100):
        assert limits.admit(Keys(origin="https://a", ip=f"10.1.0.{n}"), 10) is None
    refusal = limits.admit(Keys(origin="https://a", ip="10.2.0.1"), 10)
    assert refusal is not None and refusal.reason == "origin"
    assert limits.tables["origin"].tokens("https://a", clock.now) == 0  # no debt
    assert limits.admit(Keys(origin="https://b", ip="10.2.0.1"), 10) is None


def test_memory_stays_bounded_under_a_million_distinct_keys() -> None:
    """The tables forget the least recently used keys: a million senders, 1,000 kept each."""
    clock = Clock()
    limits = limiter(clock, max_keys=1000)
    for n in range(1_000_000):
        if n == 980_000:  # trace the last 20,000 senders' allocations (tracing all is slow)
            tracemalloc.start()
        clock.now += 0.001  # a thousand senders a second: within the instance's budget
        assert limits.admit(Keys(ip=f"ip-{n}", session=f"s-{n}"), 1) is None
    assert limits.sizes() == {
        "session": 1000,
        "ip": 1000,
        "origin": 0,
        "otlp_token": 0,
        "instance": 1,
    }
    kept = limits.tables["ip"]._buckets
    names = list(kept)
    assert names[0] == "ip-999000" and names[-1] == "ip-999999"  # the newest kept
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # What the last 20,000 senders left behind: at most the 2 x 1,000 buckets kept (~250
    # bytes each), not the ~10 MB that 20,000 kept keys in two tables would take.
    assert held < 2 * 1000 * 1024


def test_a_forgotten_key_comes_back_with_a_full_bucket() -> None:
    table = BucketTable(Limit(1, 10), max_keys=2, debt=True)
    table.charge("a", 10, 0.0)
    table.charge("b", 1, 0.0)
    table.charge("c", 1, 0.0)  # "a" is forgotten
    assert table.tokens("a", 0.0) == 10
    assert len(table) == 2


def test_the_limits_come_from_the_settings() -> None:
    settings = msgspec.structs.replace(
        load_settings(), telemetry_rate_session_eps=2.0, telemetry_rate_max_keys=7
    )
    limits = rate_limits(settings)
    assert limits.session == Limit(2.0, settings.telemetry_rate_session_burst)
    assert limits.max_keys == 7


def test_the_instance_budget_default_is_the_capacity_models_figure() -> None:
    """Not a guess: the measured events per CPU-second at the model's target utilisation."""
    from telemetry_cli.capacity_model.model import Assumptions, load_rates

    rates = load_rates()["rates"]
    assumptions = Assumptions()
    per_instance = (
        float(rates["ingest_events_per_cpu_second"])
        * assumptions.target_utilisation
        * assumptions.vcpu
    )
    default = Settings().telemetry_rate_instance_eps
    assert abs(default - per_instance) / per_instance < 0.05
    assert Settings().telemetry_rate_origin_eps == default  # one site may use a whole instance


@pytest.mark.parametrize(
    ("forwarded", "peer", "hops", "expected"),
    [
        (None, "10.0.0.1", 0, "10.0.0.1"),
        ("203.0.113.7", "10.0.0.1", 0, "203.0.113.7"),
        ("1.1.1.1, 203.0.113.7", "10.0.0.1", 0, "203.0.113.7"),  # the client wrote 1.1.1.1
        ("1.1.1.1, 203.0.113.7, 130.211.0.1", None, 1, "203.0.113.7"),  # behind our balancer
        (" 2001:db8::1 ", None, 0, "2001:db8::1"),
    ],
)
def test_the_client_address_is_the_entry_our_proxies_vouch_for(
    forwarded: str | None, peer: str | None, hops: int, expected: str
) -> None:
    assert client_ip(forwarded, peer, hops) == expected


@pytest.mark.parametrize(
    ("forwarded", "hops", "says"),
    [
        (", ".join(f"10.0.{n // 256}.{n % 256}" for n in range(1000)), 0, "more than 16"),
        ("203.0.113.7", 1, "a proxy of ours adds more"),
        ("1.1.1.1, not-an-address", 0, "not an IP address"),
        ("1.1.1.1, \udcff\udcfe", 0, "not an IP address"),
    ],
)
def test_a_bad_forwarded_header_is_a_clear_error(forwarded: str, hops: int, says: str) -> None:
    with pytest.raises(RequestProblem) as info:
        client_ip(forwarded, "10.0.0.1", hops)
    assert info.value.status == 400 and says in info.value.message


def test_a_flooding_sender_is_alerted_by_pseudonym_never_by_address() -> None:
    clock = Clock()
    settings = msgspec.structs.replace(
        load_settings(), telemetry_rate_instance_eps=1000.0, telemetry_rate_alert_share=0.2
    )
    sent: list[tuple[str, str, str, dict[str, object]]] = []
    watch = FloodWatch(settings, lambda *alert: sent.append(alert), clock)  # type: ignore[arg-type]
    watch.saw("198.51.100.9", 15_000)  # 25 % of 60 s x 1,000 events/s
    watch.saw("198.51.100.10", 600)  # 1 %
    clock.now += 60
    (flooding,) = watch.flush()
    ((name, severity, summary, details),) = sent
    assert name == "ingest.sender_flood" and severity == "warning"
    assert details["sender"] == flooding and len(flooding) == 64
    assert "198.51.100" not in summary + str(details)
    assert watch.flush() == []  # a new interval
