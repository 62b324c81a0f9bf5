"""The ingest function through functions-framework's Flask app: the adapter and properties.

The publisher is faked here; tests/integration/test_ingest_server.py runs the real server on
the real emulator.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from functions_framework import create_app
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.pubsub.publisher import reset_publisher
from shared.settings import Settings

DEFAULT_ORIGIN = Settings().allowed_origins[0]
SOURCE = Path(__file__).resolve().parents[3] / "functions" / "ingest" / "main.py"


@pytest.fixture(scope="module")
def app_and_publisher(make_publisher, make_handler) -> Iterator[tuple[Any, Any]]:
    app = create_app(target="ingest", source=str(SOURCE))
    import main as ingest_main  # the module functions-framework loaded

    publisher = make_publisher()
    ingest_main._handler = make_handler(publisher)
    yield app.test_client(), publisher
    ingest_main.reset()


def test_adapter_maps_answers_to_responses(
    app_and_publisher: tuple[Any, Any], origin, make_publisher, envelope, event
) -> None:
    client, publisher = app_and_publisher
    before = len(publisher.events)
    response = client.post(
        "/v1/events",
        data=json.dumps(envelope(event())),
        headers={"Content-Type": "text/plain;charset=UTF-8", "Origin": origin},
    )
    assert response.status_code == 202
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Access-Control-Allow-Origin"] == origin
    assert response.get_json() == {"accepted": 1, "sampled_out": 0, "rejected": []}
    assert len(publisher.events) == before + 1
    preflight = client.options("/v1/events", headers={"Origin": origin})
    assert preflight.status_code == 204 and preflight.data == b""


def test_handler_is_built_lazily_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    create_app(target="ingest", source=str(SOURCE))
    import main as ingest_main

    # The handler opens its Pub/Sub channel as it is built (connecting in the background).
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", "127.0.0.1:9")
    saved = ingest_main._handler
    ingest_main.reset()
    try:
        handler = ingest_main.get_handler()
        assert handler is ingest_main.get_handler()
        assert handler.cors.allowed_origins == {"http://localhost:8000", "http://127.0.0.1:8000"}
    finally:
        ingest_main._handler = saved
        reset_publisher()  # its channel points at the address above


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
event_like = st.fixed_dictionaries(
    {},
    optional={
        "event_id": st.sampled_from(["0b6c7b1e-1111-4222-8333-000000000001", "x", ""])
        | st.uuids().map(str),
        "name": st.sampled_from(["detail_panel.view", "node.expand", "llm.call", "nope"]),
        "version": st.integers(-1, 3) | st.text(max_size=2),
        "ts": st.sampled_from(
            ["2026-11-24T11:59:00Z", "2026-11-24T11:59:00", "bad", "2020-01-01T00:00:00Z"]
        ),
        "session_id": st.text(max_size=5),
        "props": st.dictionaries(
            st.sampled_from(["node_id", "panel", "depth", "x"]), json_values, max_size=3
        ),
    },
)
bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.builds(
        lambda events, ctx: json.dumps({"context": ctx, "events": events}).encode(),
        st.lists(event_like | json_values, max_size=8),
        st.dictionaries(
            st.sampled_from(["session_id", "user_id", "app_version", "junk"]), st.text(max_size=5)
        ),
    ),
)
header_values = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=bodies,
    content_type=st.sampled_from(
        ["application/json", "text/plain;charset=UTF-8", "text/plain", "text/html", ""]
    )
    | header_values,
    gzipped=st.booleans(),
    origin=st.sampled_from([None, DEFAULT_ORIGIN, "https://evil.example", "null"]),
    method=st.sampled_from(["POST", "POST", "POST", "GET", "OPTIONS", "PUT"]),
    path=st.sampled_from(["/v1/events", "/", "/other"]),
    extra=st.dictionaries(
        st.sampled_from(["X-Cloud-Trace-Context", "traceparent", "Content-Encoding"]),
        header_values,
        max_size=2,
    ),
)
def test_any_request_gets_a_json_non_5xx_answer_whose_counts_add_up(
    app_and_publisher: tuple[Any, Any],
    body: bytes,
    content_type: str,
    gzipped: bool,
    origin: str | None,
    method: str,
    path: str,
    extra: dict[str, str],
    make_publisher,
) -> None:
    client, _ = app_and_publisher
    headers = {"Content-Type": content_type, **extra}
    if origin:
        headers["Origin"] = origin
    if gzipped:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    response = client.open(path, method=method, data=body, headers=headers)
    assert response.status_code < 500, response.data
    if response.status_code == 204:
        return
    answer = response.get_json()
    assert isinstance(answer, dict)
    if response.status_code == 202:
        sent = json.loads(gzip.decompress(body) if gzipped else body)["events"]
        assert answer["accepted"] + answer["sampled_out"] + len(answer["rejected"]) == len(sent)
        assert sorted(r["index"] for r in answer["rejected"]) == sorted(
            {r["index"] for r in answer["rejected"]}
        )
    else:
        assert set(answer) == {"error"} and answer["error"]
