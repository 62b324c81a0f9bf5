"""The backend client on the real stack: decorator → Pub/Sub emulator → sink → PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from sqlalchemy import Engine, text

import telemetry_client as tc
from shared.pubsub import resources as names
from shared.pubsub.publisher import reset_publisher

pytestmark = pytest.mark.integration


@pytest.fixture
def pubsub_client(services) -> Iterator[tc.TelemetryClient]:
    reset_publisher()
    client = tc.configure(delay=0.05)
    yield client
    client.shutdown(5)
    reset_publisher()


def test_decorated_call_becomes_one_row_with_its_cost(
    pubsub_client, sink_url: str, engine: Engine
) -> None:
    conversation = f"c-{uuid.uuid4().hex[:8]}"

    @tc.track_api_call(provider="anthropic", model="claude-sonnet-4", operation="bias_prefilter")
    def call_llm() -> SimpleNamespace:
        return SimpleNamespace(
            usage=SimpleNamespace(
                input_tokens=2000,
                output_tokens=300,
                cache_read_input_tokens=10000,
                cache_creation_input_tokens=0,
            )
        )

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from telemetry_client import track as track_module

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    saved_tracer, track_module._tracer = track_module._tracer, provider.get_tracer("test")
    try:
        with tc.call_context(conversation_id=conversation, user_id="u-backend"):
            call_llm()
    finally:
        track_module._tracer = saved_tracer
    (span,) = exporter.get_finished_spans()
    assert span.attributes["gen_ai.provider.name"] == "anthropic"
    assert span.attributes["gen_ai.usage.input_tokens"] == 12000
    assert span.attributes["app.cost_usd"] == pytest.approx(
        (2000 * 3 + 10000 * 0.3 + 300 * 15) / 1e6
    )
    with tc.call_context(conversation_id=conversation, user_id="u-backend"):
        assert tc.emit(
            "bias.flagged", {"node_id": "n-1", "bias_type": "anchoring", "severity": "low"}
        )
    assert tc.flush(10)
    assert pubsub_client.stats.sent == 2 and pubsub_client.stats.rejected == 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            row = (
                conn.execute(
                    text("SELECT * FROM api_calls_log WHERE conversation_id = :c"),
                    {"c": conversation},
                )
                .mappings()
                .all()
            )
            domain = (
                conn.execute(
                    text("SELECT name FROM telemetry_events WHERE conversation_id = :c"),
                    {"c": conversation},
                )
                .scalars()
                .all()
            )
        if len(row) + len(domain) >= 2:
            break
        time.sleep(0.3)
    assert len(row) == 1 and domain == ["bias.flagged"]
    call = row[0]
    assert (
        call["provider"] == "anthropic"
        and call["operation"] == "bias_prefilter"
        and call["status"] == "ok"
    )
    assert (call["input_tokens"], call["cached_input_tokens"], call["output_tokens"]) == (
        2000,
        10000,
        300,
    )
    assert float(call["cost_usd"]) == pytest.approx((2000 * 3 + 10000 * 0.3 + 300 * 15) / 1e6)
    assert (
        call["price_version"] == "2026-11-01" and call["user_key"] and len(call["user_key"]) == 64
    )


def test_no_event_is_lost_when_the_process_exits_right_after_a_request(
    services, topic_tap, project_dir
) -> None:
    tag = uuid.uuid4().hex[:10]
    script = textwrap.dedent(f"""
        import telemetry_client as tc

        @tc.track_api_call(provider="openai", model="gpt-4o-mini", operation="exit-{tag}")
        def handler():
            return {{"usage": {{"prompt_tokens": 10, "completion_tokens": 2}}}}

        handler()
        # no flush: the process ends at once, as a Cloud Run instance may after a request
    """)
    with topic_tap(services.options.project, names.TOPIC_EVENTS) as tap:
        env = {
            **os.environ,
            **services.env(),
            "TELEMETRY_CLIENT_DELAY_S": "30",
            "PYTHONPATH": str(project_dir),
        }
        done = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        from shared.pubsub.message import event_dicts

        events = [e for m in tap.pull_all(expected=1, timeout=20) for e in event_dicts(m.data)]
    assert [e["props"]["operation"] for e in events] == [f"exit-{tag}"]
