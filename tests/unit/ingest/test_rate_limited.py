"""Ingest under a flood: 429 with Retry-After, refused events counted by reason, never stored."""

from __future__ import annotations

from typing import Any

from shared.contract.pipeline_events import intake_events


def test_a_sender_past_its_bucket_gets_429_and_the_others_202(
    make_publisher, post, make_handler, envelope, event
) -> None:
    publisher = make_publisher()
    handler = make_handler(
        publisher, telemetry_rate_session_eps=1.0, telemetry_rate_session_burst=3.0
    )
    flood = envelope(event(0), event(1), session_id="s-flood")
    assert post(handler, flood).status == 202
    refused = post(handler, envelope(event(2), event(3), session_id="s-flood"))
    assert refused.status == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.body is not None and "rate limit (session)" in refused.body["error"]
    assert post(handler, envelope(event(4), session_id="s-calm")).status == 202
    stored = {e.event_id[-1] for e in publisher.events}
    assert stored == {"0", "1", "4"}  # the refused beacon's events were never published


def test_refused_events_are_counted_by_reason_in_the_intake_counts(
    make_publisher, post, make_handler, envelope, event
) -> None:
    handler = make_handler(make_publisher(), telemetry_rate_ip_eps=1.0, telemetry_rate_ip_burst=2.0)
    headers: dict[str, Any] = {"X-Forwarded-For": "203.0.113.9"}
    assert post(handler, envelope(event(0), event(1)), **headers).status == 202
    assert post(handler, envelope(event(2), event(3), event(4)), **headers).status == 429
    assert post(handler, envelope(event(5)), **headers).status == 429
    counts, groups = handler.summary._counts, handler.summary._groups
    assert counts["rate_limited"] == 4 and counts["status_429"] == 2
    assert counts["events"] == 6 and counts["rejected"] == 4
    assert groups["rejected_by_field"] == {"rate_limit.ip": 4}
    rows = {
        e.props["reason"]: e.props
        for e in intake_events(counts, groups["rejected_by_field"], handler.clock(), "i")
    }
    assert rows["rate_limit.ip"]["rejected"] == 4
    assert rows["all"]["received"] == 6 and rows["all"]["accepted"] == 2


def test_a_rotating_session_id_is_held_by_the_address(
    make_publisher, post, make_handler, envelope, event
) -> None:
    handler = make_handler(
        make_publisher(), telemetry_rate_ip_eps=1.0, telemetry_rate_ip_burst=10.0
    )
    answers = [
        post(handler, envelope(event(n), session_id=f"s-{n}"), **{"X-Forwarded-For": "10.1.1.1"})
        for n in range(15)
    ]
    assert [a.status for a in answers].count(202) == 10
    assert post(handler, envelope(event(99)), **{"X-Forwarded-For": "10.1.1.2"}).status == 202


def test_bad_sender_headers_are_clear_errors(
    make_publisher, post, make_handler, envelope, event
) -> None:
    handler = make_handler(make_publisher())
    chain = ", ".join(f"10.0.{n // 256}.{n % 256}" for n in range(1000))
    answer = post(handler, envelope(event(0)), **{"X-Forwarded-For": chain})
    assert answer.status == 400 and "more than 16 addresses" in answer.body["error"]
    answer = post(handler, envelope(event(0)), **{"X-Forwarded-For": "1.2.3.4, nope"})
    assert answer.status == 400 and "not an IP address" in answer.body["error"]
    answer = post(handler, envelope(event(0)), origin="https://\udcff\udcfe.example")
    assert answer.status == 403 and "is not allowed" in answer.body["error"]
