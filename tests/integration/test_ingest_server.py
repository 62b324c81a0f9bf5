"""Ingest as a real functions-framework server on the real Pub/Sub emulator."""

from __future__ import annotations

import gzip
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from shared.pubsub.message import event_dicts
from telemetry_cli.stack import pubsub
from telemetry_cli.stack.process import free_port

pytestmark = pytest.mark.integration
ORIGIN = "http://localhost:8000"


@pytest.fixture(scope="module")
def ingest_url(
    services, tmp_path_factory: pytest.TempPathFactory, function_server
) -> Iterator[str]:
    with function_server("ingest", services.env(), tmp_path_factory.mktemp("logs")) as url:
        yield url


@pytest.fixture
def tap(services, topic_tap) -> Iterator[Any]:
    with topic_tap(services.options.project) as subscriber:
        yield subscriber


def send(
    url: str, body: bytes, headers: dict[str, str], method: str = "POST"
) -> tuple[int, dict[str, str], Any]:
    request = urllib.request.Request(
        url, data=body if method == "POST" else None, headers=headers, method=method
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
            return response.status, dict(response.headers), json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        raw = error.read()
        return error.code, dict(error.headers), json.loads(raw) if raw else None


def now_iso(offset_s: float = -5) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset_s)).isoformat()


def event(i: int, **overrides: Any) -> dict[str, Any]:
    body = {
        "event_id": f"7d1b1c3e-aaaa-4bbb-8ccc-{i:012d}",
        "name": "node.expand",
        "ts": now_iso(),
        "props": {"node_id": f"n-{i}", "depth": 2},
    }
    body.update(overrides)
    return body


def beacon(*events: dict[str, Any]) -> bytes:
    return json.dumps(
        {"context": {"session_id": "s-int", "user_id": "u-int"}, "events": list(events)}
    ).encode()


def published_events(messages: list) -> list[dict[str, Any]]:
    return [e for m in messages for e in event_dicts(m.data)]


def test_json_text_plain_and_gzip_bodies_reach_a_subscriber(ingest_url: str, tap: Any) -> None:
    cases = [
        ({"Content-Type": "application/json"}, beacon(event(1))),
        ({"Content-Type": "text/plain;charset=UTF-8"}, beacon(event(2))),
        (
            {"Content-Type": "application/json", "Content-Encoding": "gzip"},
            gzip.compress(beacon(event(3), event(4))),
        ),
    ]
    for headers, body in cases:
        status, answer_headers, answer = send(
            f"{ingest_url}/v1/events", body, {**headers, "Origin": ORIGIN}
        )
        assert status == 202, answer
        assert answer_headers["Access-Control-Allow-Origin"] == ORIGIN
    messages = tap.pull_all(expected=3)
    assert len(messages) == 3
    for message in messages:
        assert message.attributes["envelope_version"] == "1"
        assert message.attributes["environment"] == "dev"
        assert message.attributes["source"] == "ingest"
        assert int(message.attributes["event_count"]) == len(event_dicts(message.data))
    events = published_events(messages)
    assert sorted(e["props"]["node_id"] for e in events) == ["n-1", "n-2", "n-3", "n-4"]
    assert all(e["user_key"] and len(e["user_key"]) == 64 for e in events)
    assert b"u-int" not in b"".join(m.data for m in messages)


def test_mixed_batch_publishes_only_the_accepted(ingest_url: str, tap: Any) -> None:
    body = beacon(
        event(10),
        event(11, props={"node_id": "n", "depth": -1}),
        event(12, name="nope.x"),
        event(13),
    )
    status, _, answer = send(f"{ingest_url}/v1/events", body, {"Content-Type": "application/json"})
    assert status == 202
    assert answer["accepted"] == 2 and answer["sampled_out"] == 0
    assert [r["index"] for r in answer["rejected"]] == [1, 2]
    events = published_events(tap.pull_all(expected=1))
    assert sorted(e["event_id"][-2:] for e in events) == ["10", "13"]
    assert tap.drain() == []


@pytest.mark.parametrize(
    ("headers", "body", "status", "fragment"),
    [
        ({"Content-Type": "application/json"}, b"{oops", 400, "not JSON"),
        (
            {"Content-Type": "application/json"},
            b'{"context": {}}',
            400,
            "missing required 'events'",
        ),
        (
            {"Content-Type": "application/json"},
            b'{"events": 5}',
            400,
            'events: 5 is not of type "array"',
        ),
        (
            {"Content-Type": "application/json"},
            b" " * (1024 * 1024 + 10),
            413,
            "over the limit of 1048576",
        ),
        (
            {"Content-Type": "application/json"},
            json.dumps({"events": [{}] * 501}).encode(),
            413,
            "501 events",
        ),
        ({"Content-Type": "application/x-www-form-urlencoded"}, b"a=1", 415, "not supported"),
        (
            {"Content-Type": "application/json", "Origin": "https://evil.example"},
            b'{"events": [{}]}',
            403,
            "not allowed",
        ),
    ],
)
def test_whole_request_errors_over_http(
    ingest_url: str, tap: Any, headers: dict[str, str], body: bytes, status: int, fragment: str
) -> None:
    got, answer_headers, answer = send(f"{ingest_url}/v1/events", body, headers)
    assert got == status
    assert fragment in answer["error"]
    assert answer_headers["Content-Type"] == "application/json"
    assert tap.drain(0.5) == []


def test_get_is_405(ingest_url: str) -> None:
    status, headers, answer = send(f"{ingest_url}/v1/events", b"", {}, method="GET")
    assert status == 405 and headers["Allow"] == "POST, OPTIONS" and "use POST" in answer["error"]


def test_gzip_bomb_is_refused_quickly(ingest_url: str, tap: Any) -> None:
    bomb = gzip.compress(b"[" * (300 * 1024 * 1024), compresslevel=9)
    started = time.monotonic()
    status, _, answer = send(
        f"{ingest_url}/v1/events",
        bomb,
        {"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert (
        status == 413 and answer["error"] == "decompressed body is over the limit of 4194304 bytes"
    )
    assert time.monotonic() - started < 5
    assert tap.drain(0.5) == []


def test_preflight(ingest_url: str) -> None:
    status, headers, body = send(
        f"{ingest_url}/v1/events",
        b"",
        {"Origin": ORIGIN, "Access-Control-Request-Method": "POST"},
        method="OPTIONS",
    )
    assert status == 204 and body is None
    assert headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in headers["Access-Control-Allow-Methods"]
    status, headers, _ = send(
        f"{ingest_url}/v1/events", b"", {"Origin": "https://evil.example"}, method="OPTIONS"
    )
    assert status == 403 and "Access-Control-Allow-Origin" not in headers


def test_pubsub_down_gives_503_quickly_and_counts_nothing(
    services, tmp_path: Path, function_server, topic_tap
) -> None:
    port = free_port()
    log = tmp_path / "emulator.log"
    emulator = pubsub.emulator_process(port, tmp_path / "data", log)
    emulator.start()
    host = f"127.0.0.1:{port}"
    try:
        pubsub.wait_emulator(emulator, port)
        import os

        saved = os.environ.get("PUBSUB_EMULATOR_HOST")
        os.environ["PUBSUB_EMULATOR_HOST"] = host
        try:
            pubsub.provision(services.options.project, None)
            env = {
                **services.env(),
                "PUBSUB_EMULATOR_HOST": host,
                "TELEMETRY_PUBLISH_TIMEOUT_S": "2",
            }
            with function_server("ingest", env, tmp_path) as url:
                with topic_tap(services.options.project) as own_tap:
                    body = beacon(event(20))
                    status, _, answer = send(
                        f"{url}/v1/events", body, {"Content-Type": "application/json"}
                    )
                    assert status == 202 and answer["accepted"] == 1
                    assert len(own_tap.pull_all(expected=1)) == 1
                emulator.stop()
                started = time.monotonic()
                status, headers, answer = send(
                    f"{url}/v1/events", beacon(event(21)), {"Content-Type": "application/json"}
                )
                assert status == 503, answer
                assert headers["Retry-After"] == "5"
                assert "nothing of this batch was accepted" in answer["error"]
                assert "accepted" not in answer
                assert time.monotonic() - started < 6
        finally:
            if saved is None:
                os.environ.pop("PUBSUB_EMULATOR_HOST", None)
            else:
                os.environ["PUBSUB_EMULATOR_HOST"] = saved
    finally:
        emulator.stop()


def test_trace_context_travels_in_message_attributes(ingest_url: str, tap: Any) -> None:
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    status, _, _ = send(
        f"{ingest_url}/v1/events",
        beacon(event(30)),
        {"Content-Type": "application/json", "traceparent": parent},
    )
    assert status == 202
    (message,) = tap.pull_all(expected=1)
    assert message.attributes["traceparent"] == parent
    assert orjson.loads(message.data)["v"] == 1
