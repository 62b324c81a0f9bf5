"""The JS client in headless Chromium against the real local stack (ingest → Pub/Sub → sink → PostgreSQL).

Fails, never skips, when the browser or the built client is missing: `make test` installs
Chromium (Debian's package) and builds the client first.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from telemetry_cli.stack.process import free_port

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
IIFE = ROOT / "clients" / "js" / "dist" / "telemetry.iife.js"
PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>e2e</title>
<script src="/telemetry.iife.js"></script>
<script>
  const p = new URLSearchParams(location.search);
  Telemetry.init({endpoint: p.get("endpoint"), consent: true, sessionId: p.get("session"),
                  batchSize: Number(p.get("batch") || 50), flushMs: 60000, appVersion: "e2e"});
  window.trackSome = (n, prefix) => { for (let i = 0; i < n; i++) Telemetry.track("node.expand", {node_id: prefix + i}); };
</script></head><body>e2e</body></html>"""


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/telemetry.iife.js"):
            body, kind = IIFE.read_bytes(), "text/javascript"
        elif self.path.startswith("/next"):
            body, kind = b"<!doctype html><title>next</title>next", "text/html"
        else:
            body, kind = PAGE.encode(), "text/html"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class _Proxy(BaseHTTPRequestHandler):
    """In front of ingest: answers 503 while `down`, forwards otherwise."""

    target = ""
    down = 0  # requests still to refuse (-1: refuse all)
    seen = 0

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        _Proxy.seen += 1
        origin = self.headers.get("Origin", "")
        if _Proxy.down != 0:
            if _Proxy.down > 0:
                _Proxy.down -= 1
            self.send_response(503)
            self.send_header("Retry-After", "1")
            self.send_header("Access-Control-Allow-Origin", origin)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        request = urllib.request.Request(
            _Proxy.target,
            data=body,
            method="POST",
            headers={"Content-Type": self.headers.get("Content-Type", ""), "Origin": origin},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, payload, headers = response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as error:
            status, payload, headers = error.code, error.read(), dict(error.headers)
        self.send_response(status)
        for key in ("Content-Type", "Access-Control-Allow-Origin", "Vary"):
            if key in headers:
                self.send_header(key, headers[key])
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


def serve(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture(scope="module")
def page_origin() -> Iterator[str]:
    assert IIFE.exists(), "build the JS client first (make test does: npm ci && npm run build)"
    server, url = serve(_Page)
    yield url
    server.shutdown()


@pytest.fixture(scope="module")
def ingest_for_page(
    services,
    page_origin: str,
    sink_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    function_server,
) -> Iterator[str]:
    env = {**services.env(), "TELEMETRY_ALLOWED_ORIGINS": page_origin}
    with function_server("ingest", env, tmp_path_factory.mktemp("ingest-e2e")) as url:
        yield f"{url}/v1/events"


def rows_for(engine: Engine, session: str) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT props->>'node_id' FROM telemetry_events WHERE session_id = :s ORDER BY 1"
                ),
                {"s": session},
            ).scalars()
        )


def wait_for_rows(engine: Engine, session: str, expected: int, timeout: float = 45) -> list[str]:
    deadline = time.monotonic() + timeout
    rows: list[str] = []
    while time.monotonic() < deadline:
        rows = rows_for(engine, session)
        if len(rows) >= expected:
            return rows
        time.sleep(0.3)
    return rows


def open_page(
    browser: Any, origin: str, endpoint: str, session: str, batch: int = 50
) -> tuple[Any, Any, list[str]]:
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    query = urllib.parse.urlencode({"endpoint": endpoint, "session": session, "batch": batch})
    page.goto(f"{origin}/?{query}")
    return context, page, errors


def test_events_tracked_then_navigating_away_are_stored(
    browser: Any, page_origin: str, ingest_for_page: str, engine: Engine
) -> None:
    session = f"s-e2e-{uuid.uuid4().hex[:8]}"
    context, page, errors = open_page(browser, page_origin, ingest_for_page, session)
    page.evaluate("trackSome(3, 'unload-')")
    page.goto(f"{page_origin}/next")  # pagehide: the queued events leave by sendBeacon
    rows = wait_for_rows(engine, session, 3)
    context.close()
    assert rows == ["unload-0", "unload-1", "unload-2"]
    assert errors == []


def test_disallowed_origin_stores_nothing_and_the_page_does_not_throw(
    browser: Any,
    services,
    sink_url: str,
    engine: Engine,
    page_origin: str,
    tmp_path: Path,
    function_server,
) -> None:
    session = f"s-e2e-{uuid.uuid4().hex[:8]}"
    env = {**services.env(), "TELEMETRY_ALLOWED_ORIGINS": "https://somewhere-else.example"}
    with function_server("ingest", env, tmp_path) as url:
        context, page, errors = open_page(
            browser, page_origin, f"{url}/v1/events", session, batch=1
        )
        page.evaluate("trackSome(2, 'denied-')")
        page.wait_for_timeout(1500)
        page.goto(f"{page_origin}/next")
        time.sleep(3)
        context.close()
    assert rows_for(engine, session) == []
    assert errors == []


def test_ingest_503_is_retried_and_stored_later(
    browser: Any, page_origin: str, ingest_for_page: str, engine: Engine
) -> None:
    _Proxy.target, _Proxy.down, _Proxy.seen = ingest_for_page, 2, 0
    proxy, proxy_url = serve(_Proxy)
    try:
        session = f"s-e2e-{uuid.uuid4().hex[:8]}"
        context, page, errors = open_page(
            browser, page_origin, f"{proxy_url}/v1/events", session, batch=1
        )
        page.evaluate("trackSome(1, 'retry-')")
        rows = wait_for_rows(engine, session, 1, timeout=60)
        context.close()
    finally:
        proxy.shutdown()
    assert rows == ["retry-0"]
    assert _Proxy.seen >= 3  # two refusals, then the retry that went through
    assert errors == []


def test_reload_with_queued_events_stores_them_once(
    browser: Any, page_origin: str, ingest_for_page: str, engine: Engine
) -> None:
    _Proxy.target, _Proxy.down, _Proxy.seen = ingest_for_page, -1, 0
    proxy, proxy_url = serve(_Proxy)
    try:
        session = f"s-e2e-{uuid.uuid4().hex[:8]}"
        context, page, errors = open_page(
            browser, page_origin, f"{proxy_url}/v1/events", session, batch=1
        )
        page.evaluate("trackSome(3, 'reload-')")
        page.wait_for_function("JSON.parse(localStorage.getItem('tlm_q') || '[]').length === 3")
        _Proxy.down = 0  # ingest is back
        page.reload()
        rows = wait_for_rows(engine, session, 3)
        time.sleep(3)  # any late retry from the first page lands too
        rows = rows_for(engine, session)
        context.close()
    finally:
        proxy.shutdown()
    assert rows == ["reload-0", "reload-1", "reload-2"]
    assert errors == []


def test_a_rate_limited_page_backs_off_and_loses_nothing(
    browser: Any,
    services,
    sink_url: str,
    engine: Engine,
    page_origin: str,
    tmp_path: Path,
    function_server,
) -> None:
    """Ingest answers 429 past the session's burst; the client keeps the events in its queue,
    waits (Retry-After, readable cross-origin) and sends them again: all of them land."""
    session = f"s-e2e-{uuid.uuid4().hex[:8]}"
    env = {
        **services.env(),
        "TELEMETRY_ALLOWED_ORIGINS": page_origin,
        "TELEMETRY_RATE_SESSION_EPS": "2",
        "TELEMETRY_RATE_SESSION_BURST": "3",
    }
    with function_server("ingest", env, tmp_path) as url:
        # The session's burst is spent first, so the page's first sends are refused for sure.
        spent = _spend_session_burst(f"{url}/v1/events", page_origin, session)
        assert spent == 429
        context, page, errors = open_page(
            browser, page_origin, f"{url}/v1/events", session, batch=1
        )
        page.evaluate("trackSome(8, 'limited-')")
        rows = wait_for_rows(engine, session, 11, timeout=90)
        context.close()
    assert [r for r in rows if r.startswith("limited-")] == [f"limited-{n}" for n in range(8)]
    assert errors == []


def _spend_session_burst(endpoint: str, origin: str, session: str) -> int:
    """Send the session's whole burst (3 events), then one more; the last answer's status."""
    ts = datetime.now(UTC).isoformat()
    status = 0
    for count in (3, 1):
        events = [
            {
                "event_id": str(uuid.uuid4()),
                "name": "node.expand",
                "ts": ts,
                "props": {"node_id": "n"},
            }
            for _ in range(count)
        ]
        body = json.dumps({"context": {"session_id": session}, "events": events}).encode()
        request = urllib.request.Request(
            endpoint, data=body, headers={"Content-Type": "application/json", "Origin": origin}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                status = answer.status
        except urllib.error.HTTPError as error:
            status = error.code
    return status
