"""The ingest benchmark's ceiling: a bare WSGI app that only parses the JSON body and answers 202.

Run under the same gunicorn configuration as functions-framework (WORKERS, THREADS).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any

import orjson


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Read and parse the body; answer 202 with a small JSON."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = orjson.loads(environ["wsgi.input"].read(length))
    answer = orjson.dumps(
        {"accepted": len(body.get("events", [])), "sampled_out": 0, "rejected": []}
    )
    start_response(
        "202 Accepted", [("Content-Type", "application/json"), ("Content-Length", str(len(answer)))]
    )
    return [answer]


if __name__ == "__main__":
    from functions_framework._http.gunicorn import GunicornApplication

    GunicornApplication(app, "127.0.0.1", int(sys.argv[1]), False).run()  # type: ignore[no-untyped-call]
