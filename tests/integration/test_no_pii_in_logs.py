"""Canary values sent through every function and the CLI never reach a log line.

The values of ``tests/canaries.tsv`` go in as raw user, session and conversation ids, prop
values (kept, pseudonymised and dropped ones), refused values, transcript-like text, an OTLP
export's user and message content, an erasure request; every process logs at DEBUG; then
``telemetry logs scan`` reads every line they wrote.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from shared.storage.hot.engine import make_engine
from telemetry_cli.logscan import read_canaries, scan

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CANARIES_FILE = ROOT / "tests" / "canaries.tsv"
CANARY = {c.kind: c.value for c in read_canaries(CANARIES_FILE)}
TOKEN = "canary-test-otlp-token-1"


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def beacon() -> bytes:
    now = datetime.now(UTC).isoformat()
    events = [
        {
            "event_id": str(uuid.uuid4()),
            "name": "node.expand",
            "ts": now,
            "props": {"node_id": CANARY["node_id"], "depth": 1},
        },
        {
            "event_id": str(uuid.uuid4()),
            "name": "feedback.submit",
            "ts": now,
            "props": {
                "rating": 2,
                "contact_email": CANARY["email"],
                "page_url": CANARY["page_url"],
            },
        },
        # refused: a transcript where a number belongs, and where a code belongs
        {
            "event_id": str(uuid.uuid4()),
            "name": "node.expand",
            "ts": now,
            "props": {"node_id": "n-1", "depth": CANARY["transcript"]},
        },
        {
            "event_id": str(uuid.uuid4()),
            "name": "ui.performance",
            "ts": now,
            "props": {"name": CANARY["transcript"], "duration_ms": 5},
        },
    ]
    context = {
        "session_id": CANARY["session_id"],
        "user_id": CANARY["user_id"],
        "conversation_id": CANARY["conversation_id"],
    }
    return json.dumps({"context": context, "events": events}).encode()


def otlp_export() -> bytes:
    start = time.time_ns() - 2_000_000_000

    def attr(key: str, value: str) -> dict[str, Any]:
        return {"key": key, "value": {"stringValue": value}}

    span = {
        "traceId": uuid.uuid4().hex,
        "spanId": uuid.uuid4().hex[:16],
        "name": "chat gpt-4o",
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(start + 900_000_000),
        "attributes": [
            attr("gen_ai.operation.name", "chat"),
            attr("gen_ai.provider.name", "openai"),
            attr("gen_ai.request.model", "gpt-4o"),
            attr("user.id", CANARY["otlp_user"]),
            attr("session.id", CANARY["session_id"]),
            attr(
                "gen_ai.input.messages",
                json.dumps([{"role": "user", "content": CANARY["otlp_content"]}]),
            ),
            {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "12"}},
            {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "3"}},
        ],
    }
    bad = {
        **span,
        "spanId": uuid.uuid4().hex[:16],
        "attributes": [
            attr("gen_ai.operation.name", "chat"),
            attr("gen_ai.provider.name", CANARY["otlp_content"]),
        ],
    }
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span, bad]}]}]}).encode()


def test_canaries_sent_everywhere_never_reach_a_log_line(
    services: Any, function_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from telemetry_cli.stack.relay import sink_relay

    logs = tmp_path_factory.mktemp("canary-logs")
    env = {
        **services.env(),
        "TELEMETRY_LOG_LEVEL": "DEBUG",
        "TELEMETRY_LOG_SUMMARY_S": "0.2",
        "TELEMETRY_OTLP_TOKENS": TOKEN,
        "TELEMETRY_ARCHIVE_KEK": f"file:{logs / 'kek.key'}",
    }
    engine = make_engine(services.database_url)
    with (
        function_server("ingest", env, logs) as ingest,
        function_server("sink", env, logs) as sink,
        function_server("lifecycle", env, logs) as lifecycle,
    ):
        relay = sink_relay(services.options.project, sink).start()
        try:
            plain = {"Content-Type": "text/plain;charset=UTF-8"}
            assert post(f"{ingest}/v1/events", beacon(), plain) == 202
            gz = gzip.compress(beacon())
            assert post(f"{ingest}/v1/events", gz, {**plain, "Content-Encoding": "gzip"}) == 202
            broken = b'{"context": {"user_id": "' + CANARY["user_id"].encode() + b'"}, "events": ['
            assert post(f"{ingest}/v1/events", broken, plain) == 400
            auth = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
            assert post(f"{ingest}/v1/traces", otlp_export(), auth) == 200
            time.sleep(0.3)  # the summary interval ends: the next request flushes it
            assert post(f"{ingest}/v1/events", beacon(), plain) == 202
            deadline = time.monotonic() + 30
            stored = 0
            while time.monotonic() < deadline and stored < 6:
                with engine.connect() as conn:
                    stored = conn.execute(
                        text("SELECT count(*) FROM telemetry_events WHERE conversation_id = :c"),
                        {"c": CANARY["conversation_id"]},
                    ).scalar_one()
                time.sleep(0.3)
            assert stored >= 6  # the sink stored them (and logged what it does)
            body = json.dumps(
                {"action": "erase", "user_ids": [CANARY["user_id"], CANARY["otlp_user"]]}
            )
            assert post(lifecycle, body.encode(), {"Content-Type": "application/json"}) == 200
        finally:
            relay.stop()
    with (logs / "cli.log").open("wb") as cli_log:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "telemetry_cli.cli",
                "--log-level",
                "DEBUG",
                "erase",
                "--user-id",
                CANARY["user_id"],
            ],
            env={**os.environ, **env},
            stdout=cli_log,
            stderr=subprocess.STDOUT,
            timeout=300,
            cwd=logs,
        )
    assert done.returncode == 0, (logs / "cli.log").read_text()[-2000:]
    engine.dispose()

    written = {p.name: p.read_text() for p in logs.glob("*.log")}
    assert any("ingest summary" in t for t in written.values())  # DEBUG logging happened
    assert sum(len(t.splitlines()) for t in written.values()) > 20
    report = scan(logs, read_canaries(CANARIES_FILE))
    assert report.files >= 4 and report.findings == [], [str(f) for f in report.findings]
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "telemetry_cli.cli",
            "logs",
            "scan",
            str(logs),
            "--canaries-file",
            str(CANARIES_FILE),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0 and "0 finding(s)" in cli.stderr


def test_the_scanner_finds_a_canary_and_reports_where_never_what() -> None:
    # Outside the test session's folder: the session's own scan must not find this planted line.
    with tempfile.TemporaryDirectory() as folder:
        nested = Path(folder) / "exported" / "run-1"
        nested.mkdir(parents=True)
        (nested / "ingest.log").write_text('{"message": "ok"}\n{"message": "fine"}\n')
        leak = {"severity": "INFO", "message": "beacon", "session": CANARY["session_id"]}
        with gzip.open(nested / "cloud-logging.json.gz", "wt") as handle:
            handle.write('{"message": "first"}\n' + json.dumps(leak) + "\n")
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "telemetry_cli.cli",
                "logs",
                "scan",
                folder,
                "--canaries-file",
                str(CANARIES_FILE),
                "--canary",
                "extra=another-canary-value",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert out.returncode == 1
    assert out.stdout.strip() == f"{nested / 'cloud-logging.json.gz'}:2: holds a canary session_id"
    assert CANARY["session_id"] not in out.stdout + out.stderr
    assert "1 finding(s)" in out.stderr
