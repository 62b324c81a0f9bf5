"""The canary's replay and comparison in process, over fresh tiers, with an ingest stand-in.

`test_canary.py` runs the command against a real `telemetry dev`; here a small HTTP server
plays the target's ingest (the real intake, written straight to the hot tier) so a target that
loses an event can be staged: the canary must name the difference.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from shared.contract.intake import Intake
from shared.contract.validation import EventValidator
from shared.metrics.canary import CanaryFailed, differs, run_canary
from shared.policy.privacy import Pseudonymiser
from shared.policy.sampling import SamplingPolicy
from shared.settings import DEV_PSEUDONYM_KEY, parse_keyring
from shared.storage.hot.writer import write_events
from telemetry_cli.generator import EventGenerator
from tests.integration.tiers import Warm

pytestmark = pytest.mark.integration


class TargetIngest:
    """Accepts beacons like ingest and stores them, losing the first ``lose`` events."""

    def __init__(self, warm: Warm, lose: int = 0) -> None:
        self.warm = warm
        self.lose = lose
        self.intake = Intake(
            EventValidator(), SamplingPolicy({}), Pseudonymiser(parse_keyring(DEV_PSEUDONYM_KEY))
        )
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                envelope = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                result = target.intake.process_events(
                    envelope["events"], envelope.get("context", {}), datetime.now(UTC)
                )
                kept = result.accepted[target.lose :]
                target.lose = max(0, target.lose - len(result.accepted))
                write_events(target.warm.engine, kept)
                body = json.dumps(result.answer()).encode()
                self.send_response(202)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/events"


@pytest.fixture
def source(warm: Warm) -> Iterator[Warm]:
    """Fresh tiers whose warm tier holds a few sessions of generated events."""
    intake = Intake(
        EventValidator(), SamplingPolicy({}), Pseudonymiser(parse_keyring(DEV_PSEUDONYM_KEY))
    )
    generator = EventGenerator(seed=7)
    for envelope in generator.envelopes(sessions=4):
        result = intake.process_events(envelope["events"], {}, datetime.now(UTC))
        write_events(warm.engine, result.accepted)
    warm.snapshotter().run()
    yield warm


def test_a_faithful_target_shows_no_difference(source: Warm) -> None:
    target = TargetIngest(source)
    report = run_canary(source.settings, target.url, None, 40, engine=source.engine, timeout_s=10)
    target.server.shutdown()
    assert (report.sent, report.accepted, report.landed) == (40, 40, 40)
    assert report.differences == []
    assert sum(want for want, _ in report.counts.values()) == 40
    assert report.metrics and not any(differs(a, b) for a, b in report.metrics.values())
    assert report.metrics["llm_error_rate"][0] is not None
    assert report.to_json()["differences"] == []


def test_a_target_that_loses_an_event_is_named(source: Warm) -> None:
    target = TargetIngest(source, lose=1)
    report = run_canary(source.settings, target.url, None, 40, engine=source.engine, timeout_s=3)
    target.server.shutdown()
    assert report.landed == 39
    found = [str(d) for d in report.differences]
    assert "events stored: source 40, canary 39" in found
    assert any(d.startswith("count of ") for d in found)


def test_an_empty_warm_tier_is_a_clear_failure(warm: Warm) -> None:
    with pytest.raises(CanaryFailed, match="run a snapshot first"):
        run_canary(warm.settings, "http://127.0.0.1:9/v1/events", None, 10, engine=warm.engine)


def test_a_target_that_refuses_is_a_clear_failure(source: Warm) -> None:
    with pytest.raises(CanaryFailed, match="does not answer"):
        run_canary(
            source.settings,
            "http://127.0.0.1:9/v1/events",
            None,
            5,
            engine=source.engine,
            timeout_s=0.1,
        )
