"""The bounded queue and its background sender: overflow, flush, retries, fork, middlewares."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

import telemetry_client as tc
from shared.errors import TransientError
from telemetry_client.sender import BackgroundSender, HttpTransport, SenderStats


class Slow:
    def __init__(
        self, stats: SenderStats, gate: threading.Event | None = None, fail: int = 0
    ) -> None:
        self.sent: list[dict[str, Any]] = []
        self.gate = gate
        self.fail = fail

    def send(self, events: list[dict[str, Any]]) -> None:
        if self.gate is not None:
            self.gate.wait(5)
        if self.fail:
            self.fail -= 1
            raise TransientError("down")
        self.sent.extend(events)


def make(transport: Slow, **kwargs: Any) -> BackgroundSender:
    return BackgroundSender(lambda stats: transport, **kwargs)


def test_full_queue_drops_and_counts_without_blocking() -> None:
    gate = threading.Event()
    transport = Slow(SenderStats(), gate)
    sender = make(transport, max_queue=10, batch_size=5, delay=0.01)
    started = time.perf_counter()
    results = [sender.enqueue(lambda i=i: {"i": i}) for i in range(100)]
    assert time.perf_counter() - started < 0.5
    assert results.count(False) == sender.stats.dropped_queue_full > 0
    gate.set()
    assert sender.flush(5)
    assert len(transport.sent) == results.count(True)
    sender.shutdown(1)


def test_flush_sends_everything_queued() -> None:
    transport = Slow(SenderStats())
    sender = make(transport, batch_size=1000, delay=60)
    for i in range(250):
        sender.enqueue(lambda i=i: {"i": i})
    assert sender.flush(5)
    assert [e["i"] for e in transport.sent] == list(range(250))
    assert sender.stats.sent == 250
    assert sender.flush(1)  # nothing left: immediate
    sender.shutdown(1)
    assert not sender.enqueue(lambda: {})


def test_failed_sends_are_retried_then_dropped_and_counted() -> None:
    transport = Slow(SenderStats(), fail=1)
    sender = make(transport, delay=0.01, retry_s=0.5)
    sender.enqueue(lambda: {"i": 1})
    assert sender.flush(5)
    assert transport.sent == [{"i": 1}]
    transport.fail = 5
    sender.enqueue(lambda: {"i": 2})
    assert sender.flush(10)
    assert sender.stats.dropped_send_failed == 1
    sender.shutdown(1)


def test_a_broken_event_builder_is_counted_not_fatal() -> None:
    transport = Slow(SenderStats())
    sender = make(transport, delay=0.01)
    sender.enqueue(lambda: 1 / 0)  # type: ignore[arg-type, return-value]
    sender.enqueue(lambda: {"ok": True})
    assert sender.flush(5)
    assert transport.sent == [{"ok": True}] and sender.stats.telemetry_errors == 1
    sender.shutdown(1)


def test_child_after_fork_gets_its_own_worker_and_an_empty_queue(tmp_path) -> None:
    gate = threading.Event()
    transport = Slow(SenderStats(), gate)
    sender = make(transport, batch_size=1000, delay=60)
    sender.enqueue(lambda: {"from": "parent"})
    out = tmp_path / "child.json"
    pid = os.fork()
    if pid == 0:  # child
        try:
            child_transport = Slow(SenderStats())
            sender._transport = child_transport
            sender.enqueue(lambda: {"from": "child"})
            ok = sender.flush(5)
            out.write_text(json.dumps({"ok": ok, "sent": child_transport.sent}))
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    child = json.loads(out.read_text())
    assert child == {"ok": True, "sent": [{"from": "child"}]}
    gate.set()
    assert sender.flush(5)
    assert transport.sent == [{"from": "parent"}]
    sender.shutdown(1)


class _Ingest(BaseHTTPRequestHandler):
    answers: list[int] = []
    bodies: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        status = _Ingest.answers.pop(0) if _Ingest.answers else 202
        _Ingest.bodies.append(body)
        payload = json.dumps(
            {
                "accepted": len(body["events"]),
                "sampled_out": 0,
                "rejected": [{"index": 0, "event_id": None, "reason": "x"}]
                if status == 299
                else [],
            }
        ).encode()
        self.send_response(202 if status == 299 else status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


def test_http_transport_posts_beacons_and_retries_5xx() -> None:
    server = HTTPServer(("127.0.0.1", 0), _Ingest)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1/events"
    try:
        stats = SenderStats()
        transport = HttpTransport(url, stats)
        _Ingest.answers = [503]
        with pytest.raises(TransientError, match="503"):
            transport.send([{"name": "x"}])
        transport.send([{"name": "y"}])
        assert _Ingest.bodies[-1] == {"events": [{"name": "y"}]}
        _Ingest.answers = [400]
        transport.send([{"name": "z"}])
        _Ingest.answers = [299]
        transport.send([{"name": "w"}])
        assert stats.rejected == 2
        with pytest.raises(TransientError, match="unreachable"):
            HttpTransport("http://127.0.0.1:9/v1/events", stats, timeout=1).send([{}])
    finally:
        server.shutdown()


def test_configure_uses_the_ingest_url_when_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEMETRY_INGEST_URL", "http://127.0.0.1:9/v1/events")
    client = tc.configure()
    try:
        transport = client._transport_factory(client.stats)
        assert isinstance(transport, HttpTransport) and transport.url.endswith("/v1/events")
    finally:
        client.shutdown(1)


class Recorder:
    def __init__(self, stats: SenderStats) -> None:
        self.sent = Recorder.sent

    sent: list[Any] = []

    def send(self, events: list[Any]) -> None:
        self.sent.extend(events)


def test_flush_helpers_send_before_the_response() -> None:
    Recorder.sent = []
    tc.configure(Recorder, delay=60, batch_size=500)

    @tc.flush_after
    def handler(request: Any) -> str:
        tc.emit("frame.detected", {"frame": "moral", "confidence": 0.5})
        return "done"

    assert handler(None) == "done" and len(Recorder.sent) == 1

    def wsgi_app(environ: Any, start_response: Any) -> list[bytes]:
        tc.emit("frame.detected", {"frame": "moral", "confidence": 0.5})
        return [b"ok"]

    assert tc.FlushMiddleware(wsgi_app)({}, lambda *a: None) == [b"ok"] and len(Recorder.sent) == 2

    async def asgi_app(scope: Any, receive: Any, send: Any) -> None:
        tc.emit("frame.detected", {"frame": "moral", "confidence": 0.5})
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"ok"})

    seen: list[int] = []

    async def send(message: Any) -> None:
        seen.append(len(Recorder.sent))

    asyncio.run(tc.AsgiFlushMiddleware(asgi_app)({"type": "http"}, None, send))
    assert seen == [2, 3]  # flushed before the last body chunk went out

    async def lifespan(scope: Any, receive: Any, send: Any) -> None:
        seen.append(-1)

    asyncio.run(tc.AsgiFlushMiddleware(lifespan)({"type": "lifespan"}, None, send))
    assert seen[-1] == -1
    tc.get_client().shutdown(1)


def test_a_batch_rides_out_an_outage_within_its_retry_budget_honouring_retry_after() -> None:
    """Found by the chaos run: the client dropped a batch after 3 tries (about 1 s), so a
    Pub/Sub restart behind ingest lost backend events; it now retries for ``retry_s``."""
    from shared.errors import TransientError

    class Down:
        def __init__(self, failures: int) -> None:
            self.failures = failures
            self.sent: list[dict[str, Any]] = []

        def send(self, events: list[dict[str, Any]]) -> None:
            if self.failures:
                self.failures -= 1
                raise TransientError("ingest answered 503", retry_after_s=5.0)
            self.sent.extend(events)

    transport = Down(failures=8)
    sender = make(transport, delay=0.01, retry_s=60.0)
    waits: list[float] = []
    sender._pause = waits.append  # no real waiting: the waits are what is checked
    sender.enqueue(lambda: {"i": 1})
    assert sender.flush(5)
    assert transport.sent == [{"i": 1}] and sender.stats.dropped_send_failed == 0
    assert waits == [5.0] * 8  # the server's Retry-After, each time
    sender.shutdown(1)


def test_backoff_grows_with_jitter_up_to_its_ceiling() -> None:
    from telemetry_client.sender import MAX_BACKOFF_S, retry_wait_s

    waits = [retry_wait_s(OSError("down"), attempt) for attempt in range(1, 12)]
    assert 0.1 <= waits[0] <= 0.2 and all(w <= MAX_BACKOFF_S for w in waits)
    assert max(waits[-3:]) > 4.0
