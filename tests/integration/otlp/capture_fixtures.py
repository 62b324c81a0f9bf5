"""Make the golden fixtures of the token rules from real exports: ``python -m
tests.integration.otlp.capture_fixtures``.

For each source of ``official_app.py`` it runs the app against the fake LLM server, receives
what its exporter sends (OTLP/HTTP protobuf, as ingest would) on a local capture server, and
writes the export as OTLP/JSON (hex ids, as the OTLP/JSON encoding has them) to
``genai_<source>.json`` in the golden fixtures folder. The files are committed; rerun this when an
instrumentation's release changes what it sends, and review the diff.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.integration.otlp.fake_llm import fake_llm

SOURCES = ("openai", "anthropic", "google-genai", "openlit-anthropic")
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "otlp"
APP = Path(__file__).resolve().parent / "official_app.py"


def to_otlp_json(body: bytes) -> dict[str, Any]:
    """An ``ExportTraceServiceRequest`` (protobuf) as OTLP/JSON."""
    from google.protobuf.json_format import MessageToDict
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    request: dict[str, Any] = MessageToDict(ExportTraceServiceRequest.FromString(body))
    for resource_spans in request.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if span.get(key):
                        span[key] = base64.b64decode(span[key]).hex()
    return request


@contextmanager
def capture_server() -> Iterator[tuple[str, list[bytes]]]:
    """A server that keeps every trace export it is sent; its base URL and the bodies."""
    bodies: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            if self.path == "/v1/traces":
                bodies.append(body)
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", bodies
    finally:
        server.shutdown()
        server.server_close()


def merged(bodies: list[bytes]) -> dict[str, Any]:
    """The exports (one per span with a simple processor) as one request."""
    resource_spans = [rs for body in bodies for rs in to_otlp_json(body)["resourceSpans"]]
    return {"resourceSpans": resource_spans}


def main() -> None:
    with fake_llm() as llm, capture_server() as (url, bodies):
        for source in SOURCES:
            bodies.clear()
            env = {**os.environ, "FAKE_LLM_URL": llm, "OTLP_ENDPOINT": url, "OTLP_TOKEN": "x"}
            subprocess.run([sys.executable, str(APP), source], env=env, check=True, timeout=120)
            path = FIXTURES / f"genai_{source.replace('-', '_')}.json"
            path.write_text(json.dumps(merged(bodies), indent=1, sort_keys=True) + "\n")
            print(f"{path.name}: {len(bodies)} exports")


if __name__ == "__main__":
    main()
