"""The live report ``make dev`` serves: the HTML report of the last days, re-rendered at most
every ``ttl_s`` seconds, on a local port."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

logger = logging.getLogger(__name__)


class ReportServer:
    """Serves ``render()`` at ``/`` (cached for ``ttl_s``) until :meth:`stop`."""

    def __init__(self, render: Callable[[], str], port: int = 0, ttl_s: float = 30.0) -> None:
        self.render = render
        self.ttl_s = ttl_s
        self._page: tuple[float, bytes] | None = None
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path not in ("/", "/index.html"):
                    self.send_error(404, "the report is at /")
                    return
                try:
                    body = server.page()
                except Exception as exc:
                    logger.exception("live report failed")
                    self.send_error(503, f"the report could not be rendered ({type(exc).__name__})")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="report", daemon=True)

    def page(self) -> bytes:
        """The current page (rendered again once older than the TTL)."""
        with self._lock:
            if self._page is None or time.monotonic() - self._page[0] > self.ttl_s:
                self._page = (time.monotonic(), self.render().encode())
            return self._page[1]

    def start(self) -> ReportServer:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port."""
        self.httpd.shutdown()
        self.httpd.server_close()
