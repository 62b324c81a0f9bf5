"""A local Slack-compatible webhook that records what it receives, and can be made to fail."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Webhook:
    """Received bodies, and a switch that makes every call answer 503."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.refused = 0
        self.down = False
        self.lock = threading.Lock()
        self.url = ""

    def texts(self) -> list[str]:
        with self.lock:
            return [body["text"] for body in self.received]


@contextlib.contextmanager
def webhook_server() -> Iterator[Webhook]:
    """A webhook on a free local port (``Webhook.url``)."""
    hook = Webhook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with hook.lock:
                if hook.down:
                    hook.refused += 1
                    self.send_response(503)
                    self.end_headers()
                    return
                hook.received.append(json.loads(body))
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hook.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()
