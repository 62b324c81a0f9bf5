"""The chaos run's ledger: every event ingest answered 202 for, recorded by a proxy in front of it.

Every client of the run (the beacon senders, the JS client in Chromium, ``track_api_call``)
sends through :class:`LedgerProxy`, which forwards each request to ingest unchanged and, when
ingest answers 202, records the events of the request that were not rejected. So the ledger
holds exactly what ingest promised to store, whoever sent it, with no change to any client.

Each event gets a per-client sequence number in the order ingest first accepted it (a client
is a session: one browser tab, one backend conversation, one beacon sender's session), so a
loss shows as a gap in a client's sequence. An event accepted again (a client retrying after
an answer it never received) keeps its first entry and is counted as resent.

The proxy can *hold*: it answers 503 with ``Retry-After`` to new requests (clients retry, as
they do when ingest sheds load) and waits for the requests it is forwarding to finish. The fault
controller holds the door while it restarts the Pub/Sub emulator, so that no publish lands
between the emulator's topics and its subscriptions being created again.
"""

from __future__ import annotations

import contextlib
import gzip
import http.client
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from shared.storage.hot.tables import table_for_event

#: Request headers passed on to ingest (the rest are the proxy's own business).
_FORWARDED_HEADERS = ("Content-Type", "Content-Encoding", "Origin", "Authorization")
#: The ingest paths whose 202 answers carry events to record.
_EVENT_PATHS = ("/v1/events", "/")


@dataclass(frozen=True)
class LedgerEntry:
    """One accepted event: where it came from and what it is."""

    event_id: str
    client: str
    seq: int
    name: str
    day: str
    user_id: str | None

    @property
    def table(self) -> str:
        """The hot table the sink stores it in."""
        return str(table_for_event(self.name).name)


class Ledger:
    """Accepted events by id, with counts of what ingest answered."""

    def __init__(self) -> None:
        self.entries: dict[str, LedgerEntry] = {}
        self.resent = 0
        self.statuses: Counter[int] = Counter()
        self.sampled_out = 0
        self.rejected = 0
        self._next_seq: Counter[str] = Counter()
        self._lock = threading.Lock()

    def record(self, events: list[dict[str, Any]], answer: dict[str, Any]) -> None:
        """Record the events of a 202 answer that ingest did not reject."""
        rejected = {int(r["index"]) for r in answer.get("rejected", [])}
        with self._lock:
            self.rejected += len(rejected)
            self.sampled_out += int(answer.get("sampled_out", 0))
            for index, event in enumerate(events):
                if index in rejected or not isinstance(event, dict):
                    continue
                event_id = str(event.get("event_id", "")).lower()
                if event_id in self.entries:
                    self.resent += 1
                    continue
                client = str(event.get("session_id") or event.get("conversation_id") or "-")
                self._next_seq[client] += 1
                self.entries[event_id] = LedgerEntry(
                    event_id=event_id,
                    client=client,
                    seq=self._next_seq[client],
                    name=str(event.get("name")),
                    day=str(event.get("ts", ""))[:10],
                    user_id=event.get("user_id"),
                )

    def count_status(self, status: int) -> None:
        with self._lock:
            self.statuses[status] += 1

    def accepted(self) -> int:
        """How many distinct events ingest accepted."""
        with self._lock:
            return len(self.entries)

    def by_client(self) -> dict[str, int]:
        """Accepted events per client."""
        with self._lock:
            return dict(self._next_seq)

    def snapshot(self) -> list[LedgerEntry]:
        """Every entry so far (a copy)."""
        with self._lock:
            return list(self.entries.values())


def events_of(body: bytes, encoding: str | None) -> list[dict[str, Any]]:
    """The events of a beacon body as ingest read it ([] when it is not a beacon)."""
    try:
        raw = gzip.decompress(body) if encoding == "gzip" else body
        envelope = json.loads(raw)
    except (OSError, ValueError):
        return []
    events = envelope.get("events") if isinstance(envelope, dict) else None
    if not isinstance(events, list):
        return []
    context = envelope.get("context") if isinstance(envelope.get("context"), dict) else {}
    # Context fields apply to every event that does not set its own (the wire format's rule).
    return [
        {**{k: v for k, v in context.items() if k != "app_version"}, **e}
        if isinstance(e, dict)
        else e
        for e in events
    ]


class LedgerProxy:
    """An HTTP proxy to ingest that fills a :class:`Ledger` from its 202 answers."""

    def __init__(self, target: str, ledger: Ledger) -> None:
        parts = urlsplit(target)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.ledger = ledger
        self._holding = False
        self._in_flight = 0
        self._cond = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The proxy's base URL (send ``/v1/events`` here instead of to ingest)."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> LedgerProxy:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="ledger-proxy", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @contextmanager
    def held(self, timeout_s: float = 60.0) -> Iterator[None]:
        """Answer 503 to new requests, wait for those in flight, and open again afterwards."""
        with self._cond:
            self._holding = True
            deadline = time.monotonic() + timeout_s
            while self._in_flight and time.monotonic() < deadline:
                self._cond.wait(0.1)
        try:
            yield
        finally:
            with self._cond:
                self._holding = False

    def _enter(self) -> bool:
        with self._cond:
            if self._holding:
                return False
            self._in_flight += 1
            return True

    def _leave(self) -> None:
        with self._cond:
            self._in_flight -= 1
            self._cond.notify_all()

    def forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Send one request to ingest; its status, headers and body (status 0: no answer)."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            conn.request(method, path, body=body or None, headers=headers)
            response = conn.getresponse()
            return response.status, response.getheaders(), response.read()
        except (OSError, http.client.HTTPException):
            return 0, [], b""
        finally:
            conn.close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _relay(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                origin = self.headers.get("Origin")
                if not proxy._enter():
                    proxy.ledger.count_status(503)
                    self._answer(503, [("Retry-After", "1")], b'{"error": "held"}', origin)
                    return
                try:
                    headers = {k: v for k in _FORWARDED_HEADERS if (v := self.headers.get(k))}
                    status, answer_headers, answer = proxy.forward(
                        self.command, self.path, headers, body
                    )
                    if status == 202 and self.path.split("?")[0].rstrip("/") in _EVENT_PATHS:
                        events = events_of(body, self.headers.get("Content-Encoding"))
                        proxy.ledger.record(events, json.loads(answer))
                finally:
                    proxy._leave()
                proxy.ledger.count_status(status)
                if status == 0:  # ingest down (a restart): as a load balancer answers
                    self._answer(502, [], b'{"error": "ingest did not answer"}', origin)
                    return
                self._answer(status, answer_headers, answer, None)

            def _answer(
                self, status: int, headers: list[tuple[str, str]], body: bytes, origin: str | None
            ) -> None:
                self.send_response(status)
                skip = {"content-length", "connection", "transfer-encoding", "date", "server"}
                for key, value in headers:
                    if key.lower() not in skip:
                        self.send_header(key, value)
                if origin:
                    self.send_header("Access-Control-Allow-Origin", origin)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                # The client may have given up waiting (its timeout); it will send again.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)

            do_POST = _relay
            do_OPTIONS = _relay

            def log_message(self, *args: Any) -> None:
                pass

        return Handler
