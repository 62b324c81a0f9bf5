"""The OTLP route of the ingest handler, the publisher faked (integration tests run it for real)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import msgspec

from shared.http import Answer
from shared.settings import Secret

GOLDEN = Path(__file__).resolve().parents[2] / "fixtures" / "otlp" / "string_int64.json"
NOW_NS = 1_795_521_540_000_000_000  # 2026-11-24T11:59:00Z, a minute before the handler's clock


def body(**changes: Any) -> bytes:
    data = json.loads(GOLDEN.read_text())
    span = data["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    span["startTimeUnixNano"], span["endTimeUnixNano"] = str(NOW_NS), str(NOW_NS + 1_250_000_000)
    span.update(changes)
    return json.dumps(data).encode()


def otlp(
    handler: Any, raw: bytes, token: str | None = "tok-1", method: str = "POST", **headers: str
) -> Answer:
    all_headers = {"Content-Type": "application/json", **headers}
    if token:
        all_headers["Authorization"] = f"Bearer {token}"
    return handler.handle(method, "/v1/traces", all_headers, io.BytesIO(raw))


def handler_with(make_handler: Any, publisher: Any, **env: Any) -> Any:
    return make_handler(publisher, telemetry_otlp_tokens=Secret("tok-1, tok-2"), **env)


def test_a_span_is_published_as_an_llm_call(make_handler, make_publisher) -> None:
    publisher = make_publisher()
    answer = otlp(handler_with(make_handler, publisher), body())
    assert answer.status == 200 and answer.body == {"partialSuccess": {}}
    (event,) = publisher.events
    assert event.name == "llm.call" and msgspec.to_builtins(event.props)["input_tokens"] == 400
    assert publisher.batches[0][1] == "otlp"
    assert "Access-Control-Allow-Origin" not in answer.headers


def test_pubsub_down_is_503_with_retry_after(make_handler, make_publisher) -> None:
    answer = otlp(handler_with(make_handler, make_publisher(fail=True)), body())
    assert answer.status == 503 and answer.headers["Retry-After"] == "5"
    assert "nothing of this export was accepted" in answer.body["error"]


def test_too_many_spans_is_413(make_handler, make_publisher) -> None:
    handler = handler_with(make_handler, make_publisher(), telemetry_otlp_max_spans=1)
    data = json.loads(body())
    spans = data["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans.append({**spans[0], "spanId": "eee19b7ec3c1b175"})
    answer = otlp(handler, json.dumps(data).encode())
    assert answer.status == 413 and "over the limit of 1" in answer.body["error"]


def test_only_post_and_a_configured_token(make_handler, make_publisher) -> None:
    handler = handler_with(make_handler, make_publisher())
    assert otlp(handler, b"", method="GET").status == 405
    assert otlp(handler, body(), token="tok-2").status == 200
    assert otlp(handler, body(), token=None, Authorization="Basic abc").status == 401
    nobody = make_handler(make_publisher())  # no TELEMETRY_OTLP_TOKENS: nobody gets in
    assert otlp(nobody, body()).status == 403


def test_a_span_too_old_for_the_hot_tier_is_rejected_by_name(make_handler, make_publisher) -> None:
    old = NOW_NS - 40 * 86_400 * 10**9
    answer = otlp(
        handler_with(make_handler, make_publisher()),
        body(startTimeUnixNano=str(old), endTimeUnixNano=str(old + 10**9)),
    )
    partial = answer.body["partialSuccess"]
    assert partial["rejectedSpans"] == 1 and "older than the hot tier" in partial["errorMessage"]


def test_an_unexpected_bug_is_500_and_logged(make_handler, make_publisher, monkeypatch) -> None:
    handler = handler_with(make_handler, make_publisher())

    def boom(*args: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(handler.otlp, "_export", boom)
    answer = otlp(handler, body())
    assert answer.status == 500 and "not accepted" in answer.body["error"]


def test_an_export_without_genai_calls_publishes_nothing(make_handler, make_publisher) -> None:
    """Regression: an export whose spans all drop (no GenAI call) answered 500."""
    publisher = make_publisher()
    data = json.loads(body())
    span = data["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    span["attributes"] = [{"key": "http.request.method", "value": {"stringValue": "GET"}}]
    answer = otlp(handler_with(make_handler, publisher), json.dumps(data).encode())
    assert answer.status == 200 and answer.body == {"partialSuccess": {}}
    assert publisher.batches == []


def logs_json(records: int) -> bytes:
    """A log export carrying ``records`` GenAI content events (the new details event)."""
    record = {
        "timeUnixNano": str(NOW_NS),
        "eventName": "gen_ai.client.inference.operation.details",
        "body": {"stringValue": "SECRET-PROMPT-CANARY"},
    }
    scope = {"scope": {"name": "opentelemetry.instrumentation.genai.openai"}}
    scope["logRecords"] = [record] * records
    return json.dumps({"resourceLogs": [{"scopeLogs": [scope]}]}).encode()


def test_log_exports_are_counted_refused_and_never_stored(make_handler, make_publisher) -> None:
    publisher = make_publisher()
    handler = handler_with(make_handler, publisher)
    answer = handler.handle(
        "POST",
        "/v1/logs",
        {"Content-Type": "application/json", "Authorization": "Bearer tok-1"},
        io.BytesIO(logs_json(3)),
    )
    assert answer.status == 200
    partial = answer.body["partialSuccess"]
    assert partial["rejectedLogRecords"] == 3 and "not stored" in partial["errorMessage"]
    assert publisher.events == []


def test_log_exports_in_protobuf_are_answered_in_protobuf(make_handler, make_publisher) -> None:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
        ExportLogsServiceRequest,
        ExportLogsServiceResponse,
    )
    from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs

    request = ExportLogsServiceRequest(
        resource_logs=[ResourceLogs(scope_logs=[ScopeLogs(log_records=[LogRecord()] * 2)])]
    )
    answer = handler_with(make_handler, make_publisher()).handle(
        "POST",
        "/v1/logs",
        {"Content-Type": "application/x-protobuf", "Authorization": "Bearer tok-1"},
        io.BytesIO(request.SerializeToString()),
    )
    assert answer.status == 200 and answer.headers["Content-Type"] == "application/x-protobuf"
    response = ExportLogsServiceResponse.FromString(answer.raw or b"")
    assert response.partial_success.rejected_log_records == 2


def test_log_exports_need_a_token_and_an_export_body(make_handler, make_publisher) -> None:
    handler = handler_with(make_handler, make_publisher())
    no_token = handler.handle(
        "POST", "/v1/logs", {"Content-Type": "application/json"}, io.BytesIO(logs_json(1))
    )
    assert no_token.status == 401
    bad = handler.handle(
        "POST",
        "/v1/logs",
        {"Content-Type": "application/json", "Authorization": "Bearer tok-1"},
        io.BytesIO(b'{"resourceLogs": {}}'),
    )
    assert bad.status == 400 and "resourceLogs: expected a list" in bad.body["error"]


def test_each_export_is_tallied_per_instrumentation(make_handler, make_publisher) -> None:
    handler = handler_with(make_handler, make_publisher())
    otlp(handler, body())
    handler.handle(
        "POST",
        "/v1/logs",
        {"Content-Type": "application/json", "Authorization": "Bearer tok-1"},
        io.BytesIO(logs_json(2)),
    )
    rows = handler.otlp_tally.take()
    scopes = {row[0] for row in rows}
    assert "opentelemetry.instrumentation.genai.openai" in scopes  # the log export's scope
    assert rows[("opentelemetry.instrumentation.genai.openai", "", "log_records", "")] == 2
    spans = {row: n for row, n in rows.items() if row[2] in ("spans", "calls")}
    assert sorted(spans.values()) == [1, 1]
