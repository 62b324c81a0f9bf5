"""Rate limits on the real ingest: 429 with Retry-After for the sender past its bucket, 202 for
the others, buckets that refill, and a Python client that honours it and loses nothing."""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import os
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.pubsub import resources as names
from shared.pubsub.message import event_dicts

pytestmark = pytest.mark.integration
ORIGIN = "http://localhost:8000"


@pytest.fixture(scope="module")
def limited_ingest(
    services, tmp_path_factory: pytest.TempPathFactory, function_server
) -> Iterator[str]:
    env = {
        **services.env(),
        "TELEMETRY_RATE_SESSION_EPS": "2",
        "TELEMETRY_RATE_SESSION_BURST": "4",
        "TELEMETRY_RATE_IP_EPS": "5",
        "TELEMETRY_RATE_IP_BURST": "20",
    }
    with function_server("ingest", env, tmp_path_factory.mktemp("limited")) as url:
        yield f"{url}/v1/events"


def beacon(session: str, count: int) -> bytes:
    ts = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    events = [
        {"event_id": str(uuid.uuid4()), "name": "node.expand", "ts": ts, "props": {"node_id": "n"}}
        for _ in range(count)
    ]
    return json.dumps({"context": {"session_id": session}, "events": events}).encode()


def post(url: str, body: bytes, address: str) -> tuple[int, dict[str, str], Any]:
    headers = {"Content-Type": "application/json", "Origin": ORIGIN, "X-Forwarded-For": address}
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


def test_a_sender_past_its_bucket_gets_429_and_the_others_202(limited_ingest: str) -> None:
    first = post(limited_ingest, beacon("s-flood", 4), "198.51.100.1")
    assert first[0] == 202 and first[2]["accepted"] == 4
    status, headers, body = post(limited_ingest, beacon("s-flood", 2), "198.51.100.1")
    assert status == 429 and int(headers["Retry-After"]) >= 1
    assert "rate limit (session)" in body["error"]
    assert headers["Access-Control-Expose-Headers"] == "Retry-After"
    other = post(limited_ingest, beacon("s-calm", 2), "198.51.100.2")
    assert other[0] == 202 and other[2]["accepted"] == 2


def test_a_bucket_refills_for_a_sender_that_waits(limited_ingest: str) -> None:
    assert post(limited_ingest, beacon("s-wait", 4), "198.51.100.3")[0] == 202
    status, headers, _ = post(limited_ingest, beacon("s-wait", 2), "198.51.100.3")
    assert status == 429
    time.sleep(int(headers["Retry-After"]) + 0.2)
    assert post(limited_ingest, beacon("s-wait", 2), "198.51.100.3")[0] == 202


def test_rotating_session_ids_are_held_by_their_address(limited_ingest: str) -> None:
    statuses = [post(limited_ingest, beacon(f"s-rot-{n}", 2), "198.51.100.4")[0] for n in range(15)]
    assert statuses[:10] == [202] * 10 and 429 in statuses[10:]
    assert post(limited_ingest, beacon("s-rot-x", 2), "198.51.100.5")[0] == 202


def test_bad_sender_headers_are_clear_errors_on_the_real_server(limited_ingest: str) -> None:
    status, _, body = post(limited_ingest, beacon("s-x", 1), "1.2.3.4, not-an-address")
    assert status == 400 and "not an IP address" in body["error"]
    chain = ", ".join(f"10.0.0.{n % 256}" for n in range(40))
    status, _, body = post(limited_ingest, beacon("s-x", 1), chain)
    assert status == 400 and "more than 16 addresses" in body["error"]
    # A chain of 1,000 addresses is longer than the server takes for one header at all: the
    # HTTP server (gunicorn) refuses the request before ingest runs, with 431.
    chain = ", ".join(f"10.0.{n // 256}.{n % 256}" for n in range(1000))
    request = urllib.request.Request(
        limited_ingest,
        data=beacon("s-x", 1),
        headers={"Content-Type": "application/json", "X-Forwarded-For": chain},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 431
    assert b"Request Header Fields Too Large" in refused.value.read()


def test_the_python_client_honours_429_and_loses_nothing(
    limited_ingest: str, services, topic_tap, project_dir: Path
) -> None:
    """30 events in batches of 10 against an IP bucket of 20 at 5/s: refused, retried after
    Retry-After, every one published once."""
    tag = uuid.uuid4().hex[:10]
    script = textwrap.dedent(f"""
        import telemetry_client as tc

        for n in range(30):
            tc.emit("llm.call", {{"provider": "openai", "model": "gpt-4o-mini",
                "operation": "limited-{tag}", "latency_ms": 1.0, "status": "ok",
                "input_tokens": 1, "output_tokens": 1}}, session_id="s-{tag}")
        assert tc.flush(timeout=60)
        stats = tc.get_client().stats
        print(stats.sent, stats.dropped_send_failed)
    """)
    env = {
        **os.environ,
        **services.env(),
        "TELEMETRY_INGEST_URL": limited_ingest,
        "TELEMETRY_CLIENT_BATCH_SIZE": "10",
        "TELEMETRY_CLIENT_DELAY_S": "0.05",
        "PYTHONPATH": str(project_dir),
    }
    with topic_tap(services.options.project, names.TOPIC_EVENTS) as tap:
        done = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        events = [e for m in tap.pull_all(expected=3, timeout=30) for e in event_dicts(m.data)]
    sent, dropped = (int(x) for x in done.stdout.split())
    mine = [e for e in events if e["props"].get("operation") == f"limited-{tag}"]
    assert len(mine) == 30 and len({e["event_id"] for e in mine}) == 30
    assert sent == 30 and dropped == 0


def test_a_flooding_address_raises_an_alert_naming_its_pseudonym_not_its_address(
    services, function_server, topic_tap, tmp_path: Path
) -> None:
    """One address sends more than a fifth of the instance's budget in a summary interval:
    ``ingest.sender_flood`` reaches the real alerts topic with the address's pseudonym only."""
    env = {
        **services.env(),
        "TELEMETRY_LOG_SUMMARY_S": "1",
        "TELEMETRY_RATE_INSTANCE_EPS": "1000",
        "TELEMETRY_RATE_INSTANCE_BURST": "1000",
        "TELEMETRY_RATE_ALERT_SHARE": "0.2",
    }
    address = "198.51.100.77"
    with (
        function_server("ingest", env, tmp_path) as url,
        topic_tap(services.options.project, names.TOPIC_ALERTS) as tap,
    ):
        started = time.monotonic()
        while time.monotonic() - started < 2.5:  # several summary intervals of flooding
            post(f"{url}/v1/events", beacon(f"s-{uuid.uuid4().hex[:6]}", 20), address)
        messages = tap.pull_all(expected=1, timeout=20)
    alerts = [json.loads(m.data) for m in messages]
    floods = [a for a in alerts if a["alert"] == "ingest.sender_flood"]
    assert floods, alerts
    flood = floods[0]
    assert len(flood["details"]["sender"]) == 64 and flood["details"]["share"] > 0.2
    assert address not in json.dumps(flood)


def distinct_senders(url: str, count: int, workers: int = 4) -> list[tuple[int, int | None]]:
    """``count`` requests, each from its own address and session, over keep-alive connections;
    their statuses and accepted counts."""
    parsed = urllib.parse.urlsplit(url)
    # Each event breaks its schema: the limiter admits the request (its keys are what is
    # tested), validation refuses the event, and nothing is published to the shared topic (a
    # backlog of thousands would hold up the other tests' sinks).
    body = beacon("s", 1).replace(b'{"node_id": "n"}', b'{"node_id": 7}')

    def send(first: int) -> list[tuple[int, int | None]]:
        connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
        statuses: list[tuple[int, int | None]] = []
        for n in range(first, count, workers):
            session = f"s-{n}"
            address = f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"
            connection.request(
                "POST",
                parsed.path,
                body.replace(b'"s"', f'"{session}"'.encode()),
                {"Content-Type": "application/json", "Origin": ORIGIN, "X-Forwarded-For": address},
            )
            response = connection.getresponse()
            answer = json.loads(response.read())
            statuses.append((response.status, answer.get("accepted")))
        connection.close()
        return statuses

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return [status for part in pool.map(send, range(workers)) for status in part]


def test_the_key_tables_stay_bounded_under_ten_times_their_size_in_distinct_senders(
    services, function_server, tmp_path: Path
) -> None:
    """Every request a new address and a new session: the real ingest keeps ``max_keys`` of
    each, forgets the rest, and says so in its log. (The million-key scale of the same bound is
    `tests/unit/policy/test_rate_limits.py`, in process.)"""
    max_keys, senders = 300, 3_000
    env = {
        **services.env(),
        "TELEMETRY_LOG_SUMMARY_S": "1",
        "TELEMETRY_RATE_MAX_KEYS": str(max_keys),
    }
    with function_server("ingest", env, tmp_path) as url:
        statuses = distinct_senders(f"{url}/v1/events", senders)
        time.sleep(1.1)
        post(f"{url}/v1/events", beacon("s-last", 1), "10.255.255.254")  # flushes the summary
    # Each new sender has a full bucket; its one event is refused by its schema, not stored.
    assert set(statuses) == {(202, 0)}
    lines = [
        json.loads(line)
        for log in tmp_path.glob("ingest-*.log")
        for line in log.read_text().splitlines()
        if '"rate limiter keys"' in line
    ]
    assert lines, "the summary logs the limiter's tables"
    last = lines[-1]
    assert last["keys"]["session"] == max_keys and last["keys"]["ip"] == max_keys
    assert last["forgotten"]["session"] == senders + 1 - max_keys
    assert last["forgotten"]["ip"] == senders + 1 - max_keys
    assert "10.0.0.1" not in "".join(json.dumps(line) for line in lines)
