"""The ingest handler's logic, with the publisher faked (the real one has integration tests)."""

from __future__ import annotations

import gzip
import io
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.policy.privacy import Pseudonymiser

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def test_valid_batch_is_accepted_pseudonymised_and_published(
    make_publisher, post, origin, make_handler, envelope, event, pseudonym_key
) -> None:
    publisher = make_publisher()
    answer = post(make_handler(publisher), envelope(event(0), event(1, conversation_id="c-9")))
    assert answer.status == 202
    assert answer.body == {"accepted": 2, "sampled_out": 0, "rejected": []}
    assert answer.headers["Access-Control-Allow-Origin"] == origin
    first, second = publisher.events
    assert (
        first.user_key == Pseudonymiser([pseudonym_key]).pseudonym("u-42")[1]
        and first.key_id == "k1"
    )
    assert "u-42" not in json.dumps([msgspec.to_builtins(e) for e in publisher.events])
    assert first.received_at == NOW and first.sample_rate == 1.0
    assert first.app_version == "1.8.0" and second.conversation_id == "c-9"
    assert publisher.batches[0][1] == "ingest"


def test_text_plain_from_send_beacon_and_root_path(
    make_publisher, post, make_handler, envelope, event
) -> None:
    publisher = make_publisher()
    answer = post(make_handler(publisher), envelope(event()), "text/plain;charset=UTF-8", path="/")
    assert answer.status == 202 and len(publisher.events) == 1


def test_gzip_body(make_publisher, post, make_handler, envelope, event) -> None:
    publisher = make_publisher()
    raw = gzip.compress(json.dumps(envelope(event(0), event(1))).encode())
    answer = post(make_handler(publisher), raw, **{"Content-Encoding": "gzip"})
    assert answer.status == 202 and answer.body["accepted"] == 2


def test_mixed_batch_counts_every_event_once_with_reasons(
    make_publisher, post, event, make_handler, envelope
) -> None:
    publisher = make_publisher()
    events = [
        event(0),
        event(1, props={"node_id": "n", "panel": "x"}),
        event(2, name="nope.x"),
        event(3, ts=(NOW + timedelta(hours=25)).isoformat()),
        event(4, ts=(NOW - timedelta(days=31)).isoformat()),
        "not an object",
        event(0),
        event(
            7,
            name="llm.call",
            props={
                "provider": "anthropic",
                "model": "claude-sonnet-4",
                "operation": "x",
                "latency_ms": 1.5,
                "status": "ok",
            },
        ),
    ]
    answer = post(make_handler(publisher), envelope(*events))
    assert answer.status == 202
    body = answer.body
    assert body["accepted"] == 2 and body["sampled_out"] == 0
    reasons = {r["index"]: r["reason"] for r in body["rejected"]}
    assert reasons[1].startswith("props.panel: 'x' is not one of")
    assert reasons[2] == "name: 'nope.x' is not in the event registry"
    assert "more than 24 h in the future" in reasons[3]
    assert "older than the hot tier's retention" in reasons[4]
    assert reasons[5] == "event: 'not an object' must be an object"
    assert reasons[6] == "event_id: duplicate of the event at index 0"
    assert [r["event_id"] for r in body["rejected"]][:2] == [
        event(1)["event_id"],
        event(2)["event_id"],
    ]
    assert body["accepted"] + body["sampled_out"] + len(body["rejected"]) == len(events)
    assert {e.name for e in publisher.events} == {"detail_panel.view", "llm.call"}


def test_all_rejected_publishes_nothing(
    make_publisher, post, make_handler, envelope, event
) -> None:
    publisher = make_publisher()
    answer = post(make_handler(publisher), envelope(event(name="nope.x")))
    assert answer.status == 202 and answer.body["accepted"] == 0
    assert publisher.batches == []


@pytest.mark.parametrize(
    ("body", "content_type", "headers", "status", "error"),
    [
        (b"{not json", "application/json", {}, 400, "body is not JSON"),
        (b"", "application/json", {}, 400, "body is empty"),
        ({"context": {}}, "application/json", {}, 400, "body: missing required 'events'"),
        ({"events": []}, "application/json", {}, 400, "events: [] has less than 1 item"),
        ([1, 2], "application/json", {}, 400, 'body: [1,2] is not of type "object"'),
        (
            {"events": [{}] * 501},
            "application/json",
            {},
            413,
            "501 events is over the limit of 500",
        ),
        (
            b"x" * (1024 * 1024 + 1),
            "application/json",
            {},
            413,
            "body of 1048577 bytes is over the limit",
        ),
        (
            {"events": [{}]},
            "application/xml",
            {},
            415,
            "Content-Type application/xml is not supported",
        ),
        ({"events": [{}]}, "text/plain;charset=latin-1", {}, 415, "is not supported"),
        ({"events": [{}]}, "", {}, 415, "Content-Type none is not supported"),
        (
            {"events": [{}]},
            "application/json",
            {"Content-Encoding": "br"},
            415,
            "Content-Encoding br",
        ),
        (b"not gzip", "application/json", {"Content-Encoding": "gzip"}, 400, "not valid gzip"),
        (
            gzip.compress(b'{"events": [1]}', mtime=0)[:-8],
            "application/json",
            {"Content-Encoding": "gzip"},
            400,
            "truncated",
        ),
    ],
)
def test_whole_request_errors(
    body: Any,
    content_type: str,
    headers: dict[str, str],
    status: int,
    error: str,
    make_publisher,
    post,
    origin,
    make_handler,
) -> None:
    publisher = make_publisher()
    answer = post(make_handler(publisher), body, content_type, **headers)
    assert answer.status == status
    assert answer.body is not None and error in answer.body["error"], answer.body
    assert answer.headers["Access-Control-Allow-Origin"] == origin
    assert publisher.batches == []


def test_body_over_limit_without_content_length_is_cut_while_reading(make_handler) -> None:
    handler = make_handler()
    stream = io.BytesIO(b" " * (2 * 1024 * 1024))
    answer = handler.handle("POST", "/v1/events", {"Content-Type": "application/json"}, stream)
    assert answer.status == 413 and "over the limit of 1048576 bytes" in answer.body["error"]
    assert stream.tell() <= 1024 * 1024 + 1


def test_gzip_bomb_is_cut_off_while_inflating(post, make_handler) -> None:
    bomb = gzip.compress(b" " * (200 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 1024 * 1024
    answer = post(make_handler(), bomb, **{"Content-Encoding": "gzip"})
    assert answer.status == 413
    assert answer.body["error"] == "decompressed body is over the limit of 4194304 bytes"


def test_disallowed_origin_gets_403_without_cors_and_nothing_published(
    make_publisher, post, make_handler, envelope, event
) -> None:
    publisher = make_publisher()
    answer = post(make_handler(publisher), envelope(event()), origin="https://evil.example")
    assert answer.status == 403
    assert answer.body == {"error": "origin https://evil.example is not allowed to send telemetry"}
    assert "Access-Control-Allow-Origin" not in answer.headers
    assert publisher.batches == []


def test_no_origin_is_a_server_to_server_call_and_allowed(
    post, make_handler, envelope, event
) -> None:
    assert post(make_handler(), envelope(event()), origin=None).status == 202


def test_preflight_for_allowed_origin(origin, make_handler) -> None:
    answer = make_handler().handle("OPTIONS", "/v1/events", {"Origin": origin}, io.BytesIO())
    assert answer.status == 204 and answer.body is None
    assert answer.headers["Access-Control-Allow-Origin"] == origin
    assert "POST" in answer.headers["Access-Control-Allow-Methods"]
    assert "Content-Encoding" in answer.headers["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Credentials" not in answer.headers
    denied = make_handler().handle(
        "OPTIONS", "/v1/events", {"Origin": "https://x.io"}, io.BytesIO()
    )
    assert denied.status == 403


def test_other_methods_and_paths(make_handler, origin) -> None:
    handler = make_handler()
    answer = handler.handle("GET", "/v1/events", {"Origin": origin}, io.BytesIO())
    assert answer.status == 405 and answer.headers["Allow"] == "POST, OPTIONS"
    answer = handler.handle("POST", "/v2/things", {"Origin": origin}, io.BytesIO())
    assert answer.status == 404 and "POST to /v1/events" in answer.body["error"]


def test_the_openapi_document_is_served_once_generated(make_handler) -> None:
    handler = make_handler()
    answer = handler.handle("GET", "/v1/openapi.json", {}, io.BytesIO())
    assert answer.status == 200 and answer.headers["Content-Type"] == "application/json"
    document = json.loads(answer.raw)
    assert document["openapi"] == "3.1.0" and "/v1/events" in document["paths"]
    assert handler.handle("GET", "/v1/openapi.json", {}, io.BytesIO()).raw is answer.raw
    refused = handler.handle("POST", "/v1/openapi.json", {}, io.BytesIO())
    assert refused.status == 405 and "use GET" in refused.body["error"]


def test_wildcard_origin_echoes_the_caller(
    monkeypatch: pytest.MonkeyPatch, post, make_handler, envelope, event
) -> None:
    monkeypatch.setenv("TELEMETRY_ALLOWED_ORIGINS", "*")
    answer = post(make_handler(), envelope(event()), origin="https://any.example")
    assert answer.status == 202
    assert answer.headers["Access-Control-Allow-Origin"] == "https://any.example"


def test_sampling_per_session_and_incident_override(
    make_publisher, make_handler, post, envelope, event
) -> None:
    publisher = make_publisher()
    handler = make_handler(publisher, rates={"ui": 0.0})
    answer = post(
        handler,
        envelope(
            event(0),
            event(
                1,
                name="bias.flagged",
                props={"node_id": "n", "bias_type": "framing", "severity": "low"},
            ),
        ),
    )
    assert answer.body == {"accepted": 1, "sampled_out": 1, "rejected": []}
    assert [e.name for e in publisher.events] == ["bias.flagged"]
    incident = make_publisher()
    handler = make_handler(incident, rates={"ui": 0.0}, override_until=NOW + timedelta(hours=1))
    assert post(handler, envelope(event(0))).body["accepted"] == 1
    assert incident.events[0].sample_rate == 1.0
    expired = make_handler(
        make_publisher(), rates={"ui": 0.0}, override_until=NOW - timedelta(seconds=1)
    )
    assert post(expired, envelope(event(0))).body["sampled_out"] == 1


def test_kept_events_carry_their_sample_rate(
    make_publisher, make_handler, post, envelope, event
) -> None:
    publisher = make_publisher()
    handler = make_handler(publisher, rates={"ui": 0.5})
    kept = 0
    for i in range(200):
        answer = post(handler, envelope(event(i), session_id=f"s-{i}"))
        kept += answer.body["accepted"]
    assert 70 < kept < 130
    assert {e.sample_rate for e in publisher.events} == {0.5}


def test_pii_props_are_hashed_or_dropped_before_publishing(
    make_publisher, event, post, make_handler, envelope, pseudonym_key
) -> None:
    publisher = make_publisher()
    feedback = event(
        0,
        name="feedback.submit",
        props={"rating": 5, "contact_email": "me@example.com", "page_url": "https://x/?id=1"},
    )
    assert post(make_handler(publisher), envelope(feedback)).status == 202
    (stored,) = publisher.events
    props = msgspec.to_builtins(stored)["props"]  # what the message carries
    assert set(props) == {"rating", "contact_email"}
    assert props["contact_email"] == Pseudonymiser([pseudonym_key]).pseudonym("me@example.com")[1]


def test_pubsub_down_is_503_with_retry_after_and_nothing_counted(
    post, make_handler, envelope, make_publisher, event
) -> None:
    answer = post(make_handler(make_publisher(fail=True)), envelope(event()))
    assert answer.status == 503
    assert answer.headers["Retry-After"] == "5"
    assert "nothing of this batch was accepted" in answer.body["error"]
    assert "accepted" not in answer.body


def test_unexpected_failure_is_a_json_500(
    make_publisher, post, make_handler, envelope, event
) -> None:
    class Broken(make_publisher):
        def publish(self, *args: Any, **kwargs: Any) -> int:
            raise RuntimeError("bug")

    answer = post(make_handler(Broken()), envelope(event()))
    assert answer.status == 500 and answer.body == {
        "error": "internal error; the batch was not accepted"
    }


def test_trace_header_is_forwarded_to_the_message(
    make_publisher, post, make_handler, envelope, event
) -> None:
    publisher = make_publisher()
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    post(make_handler(publisher), envelope(event()), traceparent=parent)
    assert publisher.batches[0][2] == {"traceparent": parent}


def test_logs_carry_counts_but_no_values(
    caplog: pytest.LogCaptureFixture, event, post, make_handler, envelope
) -> None:
    caplog.set_level(logging.INFO, logger="ingest")
    bad = event(1, props={"node_id": "secret-node-value", "panel": "zzz-secret"})
    post(make_handler(), envelope(event(0), bad, user_id="u-secret-person"))
    (record,) = [r for r in caplog.records if r.getMessage() == "beacon"]
    assert record.accepted == 1 and record.rejected == 1
    assert record.rejected_by_field == {"props.panel": 1}
    text = json.dumps(record.__dict__, default=str)
    for secret in ("secret-node-value", "zzz-secret", "u-secret-person"):
        assert secret not in text


def test_a_clean_beacon_is_counted_in_the_summary_not_logged_alone(
    caplog: pytest.LogCaptureFixture, make_handler, post, envelope, event
) -> None:
    caplog.set_level(logging.INFO, logger="ingest")
    handler = make_handler()
    assert post(handler, envelope(event(0), event(1))).status == 202
    assert [r for r in caplog.records if r.getMessage() == "beacon"] == []
    post(handler, b"{oops")
    (bad,) = [r for r in caplog.records if r.getMessage() == "beacon"]
    assert bad.status == 400
    handler.summary.flush()
    (summary,) = [r for r in caplog.records if r.getMessage() == "ingest summary"]
    assert summary.requests == 2 and summary.status_202 == 1 and summary.status_400 == 1
    assert summary.events == 2 and summary.accepted == 2


def test_nul_characters_are_rejected_per_event_not_dead_lettered_later(
    make_publisher, post, make_handler, envelope, event
) -> None:
    publisher = make_publisher()
    raw = json.dumps(
        envelope(event(0), event(1, props={"node_id": "n\u0000x", "panel": "bias"}))
    ).encode()
    assert b"\\u0000" in raw
    answer = post(make_handler(publisher), raw)
    assert answer.status == 202
    assert answer.body["accepted"] == 1
    (rejected,) = answer.body["rejected"]
    assert rejected["index"] == 1 and "U+0000" in rejected["reason"]
    assert [e.event_id for e in publisher.events] == [event(0)["event_id"]]


HOSTILE_EVENT = (
    '{"event_id":"0b6c7b1e-1111-4222-8333-000000000001","name":"detail_panel.view",'
    '"ts":"2026-11-24T11:59:00Z","session_id":"s","props":%s}'
)


def hostile(props: str) -> bytes:
    return ('{"events":[' + HOSTILE_EVENT % props + "]}").encode()


def test_props_nested_50000_deep_is_a_400_not_a_500(make_handler, post) -> None:
    """Regression: deep nesting hit msgspec's recursion limit and answered 500."""
    answer = post(make_handler(), hostile("[" * 50_000 + "]" * 50_000))
    assert answer.status == 400 and "depth limit" in answer.body["error"]


@pytest.mark.parametrize(
    "number", ["1e400", "-1e400", "9" * 5000], ids=["1e400", "-1e400", "5000 digits"]
)
def test_numbers_beyond_a_double_are_rejected_per_event_not_a_500(
    make_handler, post, number
) -> None:
    """Regression: ``1e400`` and a 5,000-digit integer passed msgspec as raw JSON, then orjson
    refused them and ingest answered 500."""
    props = f'{{"node_id":"n","panel":"bias","duration_ms":{number}}}'
    answer = post(make_handler(), hostile(props))
    assert answer.status == 202 and answer.body["accepted"] == 0
    (rejected,) = answer.body["rejected"]
    assert rejected["index"] == 0 and "cannot be read as JSON" in rejected["reason"]


def test_invalid_utf8_inside_a_string_is_a_400_not_a_500(make_handler, post) -> None:
    """Regression: invalid UTF-8 inside a JSON string answered 500; the README promises 400."""
    body = hostile(
        '{"node_id":"n-\xff\xfe","panel":"bias","duration_ms":1}'.replace("\xff\xfe", "@@")
    )
    body = body.replace(b"@@", b"\xff\xfe")
    answer = post(make_handler(), body)
    assert answer.status == 400 and "not valid UTF-8" in answer.body["error"]


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.one_of(
        st.binary(max_size=300),
        JSON_VALUES.map(lambda v: json.dumps(v).encode()),
        JSON_VALUES.map(lambda v: json.dumps({"events": [v]}).encode()),
        JSON_VALUES.map(lambda v: hostile(json.dumps(v))),
        st.sampled_from(["1e400", "-0", "1E+999", "9" * 400, '"\\ud800"', "[[[[[]]]]]"]).map(
            lambda v: hostile(f'{{"node_id":"n","panel":"bias","duration_ms":{v}}}')
        ),
    )
)
def test_no_body_from_outside_gets_a_5xx(body: bytes, make_handler, post) -> None:
    """Any bytes and any JSON at the request path: a 2xx or 4xx, never a 5xx."""
    answer = post(make_handler(), body)
    assert answer.status < 500, answer.body
