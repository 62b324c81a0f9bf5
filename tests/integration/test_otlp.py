"""OTLP trace ingest on the real ingest server and Pub/Sub emulator: real exporters, real
instrumentation libraries, golden OTLP/JSON payloads."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from shared.contract import otlp
from shared.llm import genai
from shared.policy.privacy import Pseudonymiser
from shared.pubsub.message import event_dicts
from shared.settings import DEV_PSEUDONYM_KEY, parse_keyring, reset_settings
from shared.storage.hot.engine import dispose_engine, make_engine
from telemetry_cli.cli import cli
from tests.integration.otlp.fake_llm import LEDGER, fake_llm

pytestmark = pytest.mark.integration

TOKEN = "otlp-test-token-1"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "otlp"
APP = Path(__file__).resolve().parent / "otlp" / "instrumented_app.py"
OFFICIAL_APP = Path(__file__).resolve().parent / "otlp" / "official_app.py"
#: The golden payloads' clock: their times are moved to now, keeping each value's JSON type.
FIXTURE_BASE_NS = 1_764_331_200_000_000_000


@pytest.fixture(scope="module")
def otlp_ingest(
    services: Any, function_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    logs = tmp_path_factory.mktemp("otlp-logs")
    env = {
        **services.env(),
        "TELEMETRY_OTLP_TOKENS": f"{TOKEN},second-token-xyz",
        "TELEMETRY_LOG_SUMMARY_S": "1",
    }
    with function_server("ingest", env, logs) as url:
        yield url, logs


@pytest.fixture
def tap(services: Any, topic_tap: Any) -> Iterator[Any]:
    with topic_tap(services.options.project) as subscriber:
        yield subscriber


def golden(name: str, trace_id: str | None = None) -> bytes:
    """A fixture with its times moved to now, each time keeping its JSON type (and, given one,
    every span under another trace id)."""
    shift = time.time_ns() - 60_000_000_000 - FIXTURE_BASE_NS
    data = json.loads((FIXTURES / name).read_text())
    for resource in data["resourceSpans"]:
        scopes = resource.get("scopeSpans") or resource.get("instrumentationLibrarySpans")
        for scope in scopes:
            for span in scope["spans"]:
                if trace_id:
                    span["traceId"] = trace_id
                for key in ("startTimeUnixNano", "endTimeUnixNano"):
                    value = span[key]
                    moved = int(value) + shift
                    span[key] = str(moved) if isinstance(value, str) else moved
    return json.dumps(data).encode()


def post(
    url: str,
    body: bytes,
    content_type: str = "application/json",
    token: str | None = TOKEN,
    gzipped: bool = False,
) -> tuple[int, dict[str, str], bytes]:
    headers = {"Content-Type": content_type}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if gzipped:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    request = urllib.request.Request(f"{url}/v1/traces", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def run_app(
    app: Path, source: str, ingest_url: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run an instrumented app (``source`` its library) against a fresh fake LLM server,
    exporting to ``ingest_url``; it must succeed."""
    with fake_llm() as llm:
        done = subprocess.run(
            [sys.executable, str(app), source],
            env={
                **os.environ,
                "FAKE_LLM_URL": llm,
                "OTLP_ENDPOINT": ingest_url,
                "OTLP_TOKEN": TOKEN,
                "OTEL_SDK_DISABLED": "false",
                **env,
            },
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def calls(tap: Any, expected: int, timeout: float = 20) -> list[dict[str, Any]]:
    """The llm.call events published (not ingest's own pipeline.intake counts), by event id."""
    found: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while len(found) < expected and time.monotonic() < deadline:
        for message in tap.pull_all(expected=1, timeout=max(0.1, deadline - time.monotonic())):
            for event in event_dicts(message.data):
                if event["name"] == "llm.call":
                    found[event["event_id"]] = event
    return sorted(found.values(), key=lambda e: e["event_ts"])


def test_golden_string_int64_span_maps_every_field(otlp_ingest: Any, tap: Any) -> None:
    url, _ = otlp_ingest
    status, headers, raw = post(url, golden("string_int64.json"))
    assert status == 200 and json.loads(raw) == {"partialSuccess": {}}
    assert "Access-Control-Allow-Origin" not in headers
    (call,) = calls(tap, 1)
    props = call["props"]
    assert (props["provider"], props["model"], props["operation"]) == (
        "openai",
        "gpt-4o-2024-08-06",
        "chat",
    )
    assert (props["input_tokens"], props["cached_input_tokens"]) == (400, 800)
    assert (props["output_tokens"], props["reasoning_tokens"]) == (110, 40)
    assert props["latency_ms"] == 1250.0 and props["status"] == "ok"
    assert props["cost_usd"] > 0 and props["price_version"]
    assert call["conversation_id"] == "conv-77" and call["session_id"] == "sess-77"
    assert call["app_version"] == "2.4.1"
    user_key = Pseudonymiser(parse_keyring(DEV_PSEUDONYM_KEY)).pseudonym("user-otlp-77")[1]
    assert call["user_key"] == user_key and "user-otlp-77" not in json.dumps(call)
    assert "CANARY" not in json.dumps(call)


def test_golden_legacy_names_and_openinference(otlp_ingest: Any, tap: Any) -> None:
    status, _, raw = post(otlp_ingest[0], golden("legacy_names.json"), gzipped=True)
    assert status == 200 and json.loads(raw) == {"partialSuccess": {}}
    anthropic, openinference = calls(tap, 2)
    a = anthropic["props"]
    assert (a["provider"], a["model"]) == ("anthropic", "claude-sonnet-4")
    # 2000 input under the conventions holds 1500 read and 100 written: 400 uncached.
    assert (a["input_tokens"], a["cached_input_tokens"], a["cache_write_tokens"]) == (
        400,
        1500,
        100,
    )
    assert a["output_tokens"] == 300
    o = openinference["props"]
    assert (o["provider"], o["model"], o["input_tokens"], o["cached_input_tokens"]) == (
        "openai",
        "gpt-4o-mini",
        400,
        100,
    )
    assert o["output_tokens"] == 20 and "CANARY" not in json.dumps([anthropic, openinference])


def test_unknown_usage_keys_never_lose_the_span(otlp_ingest: Any, tap: Any) -> None:
    status, _, raw = post(otlp_ingest[0], golden("unknown_usage_keys.json"))
    assert status == 200 and json.loads(raw) == {"partialSuccess": {}}
    (call,) = calls(tap, 1)
    assert (call["props"]["input_tokens"], call["props"]["output_tokens"]) == (100, 10)


def test_mixed_batch_counts_drops_and_answers_partial_success(otlp_ingest: Any, tap: Any) -> None:
    url, logs = otlp_ingest
    status, _, raw = post(url, golden("mixed_batch.json"))
    answer = json.loads(raw)["partialSuccess"]
    assert status == 200 and answer["rejectedSpans"] == 2
    assert "span 0000000000000006" in answer["errorMessage"]
    assert "model" in answer["errorMessage"]
    stored = calls(tap, 2)
    assert [c["props"]["status"] for c in stored] == ["ok", "error"]
    assert stored[1]["props"]["error_type"] == "RateLimitError"
    assert "CANARY" not in json.dumps(stored)
    logged = "".join(p.read_text() for p in logs.glob("*.log"))
    assert '"otlp_rejected": 2' in logged and "CANARY" not in logged


def test_protobuf_from_the_opentelemetry_sdk_exporter(otlp_ingest: Any, tap: Any) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
    from opentelemetry.trace import Status, StatusCode

    exporter = OTLPSpanExporter(
        endpoint=f"{otlp_ingest[0]}/v1/traces", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    results: list[SpanExportResult] = []
    original = exporter.export

    def export(spans: Any) -> SpanExportResult:
        results.append(original(spans))
        return results[-1]

    exporter.export = export  # type: ignore[method-assign]
    provider = TracerProvider(resource=Resource.create({"service.version": "9.9"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("request"):
        with tracer.start_as_current_span("chat claude") as span:
            span.set_attributes(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "anthropic",
                    "gen_ai.request.model": "claude-sonnet-4",
                    "gen_ai.usage.input_tokens": 1000,
                    "gen_ai.usage.output_tokens": 50,
                    "gen_ai.usage.cache_creation.input_tokens": 200,
                    "gen_ai.input.messages": "SECRET-PROMPT-CANARY",
                }
            )
        with tracer.start_as_current_span("chat timeout") as span:
            span.set_attributes(
                {"gen_ai.request.model": "claude-sonnet-4", "gen_ai.system": "anthropic"}
            )
            span.set_attribute("error.type", "APITimeoutError")
            span.set_status(Status(StatusCode.ERROR))
    provider.shutdown()
    assert results and all(r == SpanExportResult.SUCCESS for r in results)
    ok, timed_out = calls(tap, 2)
    assert ok["props"]["input_tokens"] == 800 and ok["props"]["cache_write_tokens"] == 200
    assert ok["app_version"] == "9.9"
    assert timed_out["props"]["status"] == "timeout"
    assert timed_out["props"]["error_type"] == "APITimeoutError"


def test_protobuf_answers_are_protobuf(otlp_ingest: Any, tap: Any) -> None:
    from google.rpc.status_pb2 import Status
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
        ExportTraceServiceResponse,
    )

    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id = bytes(range(16)), bytes(range(8))
    span.start_time_unix_nano = time.time_ns() - 2_000_000_000
    span.end_time_unix_nano = span.start_time_unix_nano + 5_000_000
    span.attributes.add(key="gen_ai.operation.name").value.string_value = "chat"
    status, headers, raw = post(
        otlp_ingest[0], request.SerializeToString(), "application/x-protobuf"
    )
    response = ExportTraceServiceResponse.FromString(raw)
    assert status == 200 and headers["Content-Type"] == "application/x-protobuf"
    assert response.partial_success.rejected_spans == 1
    assert "model" in response.partial_success.error_message
    status, headers, raw = post(otlp_ingest[0], b"\xff\xff not protobuf", "application/x-protobuf")
    assert status == 400 and "ExportTraceServiceRequest" in Status.FromString(raw).message


def test_an_exporters_retry_is_stored_once(services: Any, otlp_ingest: Any, sink_url: str) -> None:
    trace_id = uuid.uuid4().hex
    body = golden("string_int64.json", trace_id)
    event_id = genai.event_id(otlp.SpanRecord(trace_id, "eee19b7ec3c1b174", "", 0, 0, 0))
    assert post(otlp_ingest[0], body)[0] == 200
    assert post(otlp_ingest[0], body)[0] == 200  # the retry
    engine = make_engine(services.database_url)
    query = text("SELECT count(*) FROM api_calls_log WHERE call_id = :id")

    def stored() -> int:
        with engine.connect() as conn:
            return int(conn.execute(query, {"id": event_id}).scalar_one())

    deadline = time.monotonic() + 30
    while not stored() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(2)  # let the retry's message arrive too
    rows = stored()
    assert rows == 1


@pytest.mark.parametrize(
    ("token", "status", "says"),
    [(None, 401, "Authorization: Bearer"), ("wrong", 403, "not one this deployment accepts")],
)
def test_tokens(otlp_ingest: Any, token: str | None, status: int, says: str) -> None:
    got, headers, raw = post(otlp_ingest[0], golden("string_int64.json"), token=token)
    assert got == status and says in json.loads(raw)["error"]
    assert headers["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    ("body", "content_type", "status", "says"),
    [
        (b"{", "application/json", 400, "not JSON"),
        (b'{"resourceSpans": {}}', "application/json", 400, "expected a list"),
        (b"<xml/>", "text/xml", 415, "not supported"),
        (
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}',
            "application/json",
            400,
            "traceId",
        ),
    ],
)
def test_bad_exports_are_told_what_is_wrong(
    otlp_ingest: Any, body: bytes, content_type: str, status: int, says: str
) -> None:
    got, _, raw = post(otlp_ingest[0], body, content_type)
    assert got == status and says in json.loads(raw)["error"]


@pytest.mark.parametrize("library", ["traceloop", "openlit"])
def test_instrumentation_libraries_calling_the_real_openai_client(
    otlp_ingest: Any, tap: Any, library: str, tmp_path: Path
) -> None:
    url, logs = otlp_ingest
    run_app(APP, library, url, TRACELOOP_TELEMETRY="false")
    stored = calls(tap, 3)
    assert len(stored) == 3, [c["props"] for c in stored]
    plain, streamed, failed = stored
    for call in (plain, streamed):
        props = call["props"]
        assert props["provider"] == "openai" and props["model"].startswith("gpt-4o")
        assert props["status"] == "ok"
        assert props["cached_input_tokens"] + props["input_tokens"] == 1200
        assert props["input_tokens"] == 400, props
        assert props["cost_usd"] > 0
    assert failed["props"]["status"] == "error" and failed["props"]["model"] == "fail-model"
    assert failed["props"]["error_type"]
    logged = "".join(p.read_text() for p in logs.glob("*.log"))
    assert "SECRET-PROMPT-CANARY" not in logged + json.dumps(stored)


def retimed(name: str, scope_name: str | None = None) -> bytes:
    """A captured export with its spans moved to a minute ago (and, given one, another scope
    name on every scope)."""
    data = json.loads((FIXTURES / name).read_text())
    scopes = [scope for resource in data["resourceSpans"] for scope in resource["scopeSpans"]]
    first = min(int(span["startTimeUnixNano"]) for scope in scopes for span in scope["spans"])
    shift = time.time_ns() - 60_000_000_000 - first
    for scope in scopes:
        if scope_name is not None:
            scope["scope"]["name"] = scope_name
        for span in scope["spans"]:
            span["traceId"] = uuid.uuid4().hex
            for key in ("startTimeUnixNano", "endTimeUnixNano"):
                span[key] = str(int(span[key]) + shift)
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    ("source", "provider"),
    [
        ("openai", "openai"),
        ("anthropic", "anthropic"),
        ("google-genai", "gemini"),
        ("openlit-anthropic", "anthropic"),
    ],
)
def test_genai_instrumentations_on_their_real_sdks_fill_a_balanced_ledger(
    otlp_ingest: Any, tap: Any, source: str, provider: str
) -> None:
    """Each provider's real SDK, traced by its instrumentation, against the fake server: the
    plain and the streamed call come to the provider's usage in our kinds, from cache and
    reasoning tokens counted each its own way (``shared/llm/token_rules.py``)."""
    url, logs = otlp_ingest
    run_app(OFFICIAL_APP, source, url)
    failing_is_genai = not source.startswith("openlit")  # OpenLIT's carries no GenAI attributes
    stored = calls(tap, 3 if failing_is_genai else 2)
    plain, streamed = stored[:2]
    uncached, read, write, output, reasoning = LEDGER[provider]
    for call in (plain, streamed):
        props = call["props"]
        assert props["provider"] == provider and call["version"] == 2
        assert "token_anomaly" not in props
        assert (props["input_tokens"], props["output_tokens"]) == (uncached, output), props
        assert props["reasoning_tokens"] == reasoning
        if not source.startswith("openlit"):  # OpenLIT's stream handler drops the cache counts
            assert (props["cached_input_tokens"], props["cache_write_tokens"]) == (read, write)
    assert streamed["props"]["streamed"] is True
    if failing_is_genai:
        assert stored[2]["props"]["status"] == "error"
    logged = "".join(p.read_text() for p in logs.glob("*.log"))
    assert "SECRET-PROMPT-CANARY" not in logged + json.dumps(stored)


def test_a_call_that_breaks_the_ledger_is_stored_as_sent_and_flagged(
    services: Any, otlp_ingest: Any, sink_url: str
) -> None:
    """Anthropic's counts (input without the cache) from an instrumentation no rule knows: read
    by the conventions they cannot balance, so they are stored as sent, flagged, and counted
    by invariant and source in the ingest summary."""
    body = retimed("genai_openlit_anthropic.json", scope_name="acme.genai.anthropic")
    status, _, raw = post(otlp_ingest[0], body)
    assert status == 200 and json.loads(raw)["partialSuccess"] == {}
    engine = make_engine(services.database_url)
    query = text(
        "SELECT input_tokens, cached_input_tokens, cache_write_tokens, token_anomaly,"
        " token_source FROM api_calls_log WHERE token_source = 'acme.genai.anthropic'"
    )
    deadline = time.monotonic() + 30
    rows: list[Any] = []
    while len(rows) < 1 and time.monotonic() < deadline:
        with engine.connect() as conn:
            rows = list(conn.execute(query))
        time.sleep(0.2)
    assert (300, 900, 200, "cache_exceeds_input", "acme.genai.anthropic") in rows
    summary = ""
    deadline = time.monotonic() + 30
    while "cache_exceeds_input acme.genai.anthropic" not in summary:
        assert time.monotonic() < deadline, "no summary counted the anomaly"
        post(otlp_ingest[0], retimed("genai_openai.json"))  # a later request flushes the summary
        summary = "".join(p.read_text() for p in otlp_ingest[1].glob("*.log"))
        time.sleep(0.5)


def test_content_capture_on_stores_no_content_and_refuses_the_details_log_event(
    otlp_ingest: Any, tap: Any
) -> None:
    """An app with content capture on sends its prompts in span attributes and in the
    ``gen_ai.client.inference.operation.details`` log event: the calls are stored without them,
    and ``/v1/logs`` answers that its records are not stored (and counts them)."""
    url, logs = otlp_ingest
    run_app(OFFICIAL_APP, "openai", url, CAPTURE_CONTENT="1")
    stored = calls(tap, 3)
    assert len(stored) == 3 and stored[0]["props"]["input_tokens"] == 400
    deadline = time.monotonic() + 30
    while dropped_log_records(logs) < 3:  # one details event per call
        assert time.monotonic() < deadline, "no summary counted the log records"
        post(url, retimed("genai_openai.json"))  # a later request flushes the summary
        time.sleep(0.5)
    logged = "".join(p.read_text() for p in logs.glob("*.log"))
    assert "SECRET-PROMPT-CANARY" not in logged + json.dumps(stored)


def dropped_log_records(logs: Path) -> int:
    """The log records the ingest summaries counted as dropped so far."""
    total = 0
    for log in logs.glob("*.log"):
        for line in log.read_text().splitlines():
            if '"ingest summary"' in line:
                total += json.loads(line).get("otlp_log_records_dropped", 0)
    return total


def test_the_otlp_report_lists_each_sources_drops_by_name_never_by_value(
    services: Any, otlp_ingest: Any, sink_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Content capture on: the report names the content attributes the official openai
    instrumentation sent and how often, the log records refused and the calls stored, and a
    planted unknown attribute of an unknown instrumentation by name and count, never its value;
    read from the pipeline.otlp events that went through the sink into the hot tier."""
    url, _ = otlp_ingest
    run_app(OFFICIAL_APP, "openai", url, CAPTURE_CONTENT="1")
    # An instrumentation no one knows, sending an attribute no one reads, twice.
    planted = json.loads(retimed("genai_openai.json", scope_name="acme.planted"))
    for resource in planted["resourceSpans"]:
        for scope in resource["scopeSpans"]:
            for span in scope["spans"]:
                span["attributes"].append(
                    {"key": "acme.unknown_attribute", "value": {"stringValue": "PLANTED-VALUE"}}
                )
    for _ in range(2):
        assert post(url, json.dumps(planted).encode())[0] == 200
    engine = make_engine(services.database_url)
    totals = text(
        "SELECT props->>'otlp_scope', props->>'measure', sum((props->>'occurrences')::int)"
        " FROM telemetry_events WHERE name = 'pipeline.otlp' GROUP BY 1, 2"
    )
    deadline = time.monotonic() + 60
    while True:  # until the summaries of this run's exports went through the sink
        with engine.connect() as conn:
            stored = {(scope, m): n for scope, m, n in conn.execute(totals).all()}
        official = "opentelemetry.instrumentation.genai.openai"
        if (
            stored.get((official, "calls"), 0) >= 3
            and stored.get((official, "log_records"), 0) >= 3
            and stored.get(("acme.planted", "spans"), 0) >= 6
        ):
            break
        assert time.monotonic() < deadline, f"pipeline.otlp events so far: {stored}"
        post(url, retimed("genai_openai.json"))  # a later request flushes the summary
        time.sleep(0.5)
    for name, value in services.env().items():
        monkeypatch.setenv(name, value)
    reset_settings()
    dispose_engine()
    try:
        today = datetime.now(UTC).strftime("%Y-%m-%d")
        result = CliRunner().invoke(
            cli, ["otlp", "report", "--since", today, "--format", "json"], catch_exceptions=False
        )
        text_result = CliRunner().invoke(cli, ["otlp", "report", "--since", today])
    finally:
        reset_settings()
        dispose_engine()
    assert result.exit_code == 0, result.output
    sources = {s["scope"]: s for s in json.loads(result.output)}
    openai_source = sources["opentelemetry.instrumentation.genai.openai"]
    assert openai_source["version"] and openai_source["calls"] >= 3
    assert openai_source["log_records"] >= 3
    dropped = openai_source["by_item"]["dropped_attribute"]
    assert dropped["gen_ai.input.messages"] >= 3 and dropped["server.address"] >= 3
    assert "SECRET-PROMPT-CANARY" not in result.output + text_result.output
    assert "attributes dropped, by name" in text_result.output
    unknown = sources["acme.planted"]["by_item"]["dropped_attribute"]
    assert unknown["acme.unknown_attribute"] == 6  # three spans an export, two exports
    assert "acme.unknown_attribute" in text_result.output
    assert "PLANTED-VALUE" not in result.output + text_result.output
