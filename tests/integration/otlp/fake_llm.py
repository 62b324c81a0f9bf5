"""A local LLM server speaking three providers' APIs: fixed answers with cache- and
reasoning-aware usage, plain or streamed, and a failing model (``fail-model`` answers 500).

* OpenAI chat completions: ``POST …/v1/chat/completions`` (``stream: true``: SSE chunks);
* Anthropic messages: ``POST …/v1/messages`` (``stream: true``: SSE events);
* Gemini: ``POST …/v1beta/models/<model>:generateContent`` and ``:streamGenerateContent``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: Usage every answer reports: 1200 prompt tokens of which 800 cached, 150 completion tokens
#: of which 40 reasoning.
USAGE = {
    "prompt_tokens": 1200,
    "completion_tokens": 150,
    "total_tokens": 1350,
    "prompt_tokens_details": {"cached_tokens": 800},
    "completion_tokens_details": {"reasoning_tokens": 40},
}


#: Anthropic's usage: ``input_tokens`` excludes the cache (300 uncached, 900 read from the
#: cache, 200 written to it); 120 output tokens.
ANTHROPIC_USAGE = {
    "input_tokens": 300,
    "cache_read_input_tokens": 900,
    "cache_creation_input_tokens": 200,
    "output_tokens": 120,
}
#: Gemini's usage: the prompt's 1000 tokens include 600 cached; 100 candidate tokens and,
#: beside them, 50 thinking tokens.
GEMINI_USAGE = {
    "promptTokenCount": 1000,
    "cachedContentTokenCount": 600,
    "candidatesTokenCount": 100,
    "thoughtsTokenCount": 50,
    "totalTokenCount": 1150,
}

#: Each provider's usage above in our kinds, as the ledger must come to: (uncached input, cache
#: read, cache write, output without reasoning, reasoning).
LEDGER = {
    "openai": (400, 800, 0, 110, 40),
    "anthropic": (300, 900, 200, 120, 0),
    "gemini": (400, 600, 0, 100, 50),
}


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
        path = self.path.split("?")[0]
        if path.endswith("/messages"):
            self._anthropic(request)
            return
        if ":generateContent" in path or ":streamGenerateContent" in path:
            self._gemini(path)
            return
        model = request.get("model", "gpt-4o")
        if model == "fail-model":
            self._json(500, {"error": {"message": "the fake model failed", "type": "server_error"}})
            return
        if request.get("stream"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for chunk in _chunks(model):
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.write(b"data: [DONE]\n\n")
            return
        self._json(
            200,
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": 1_764_000_000,
                "model": f"{model}-2024-08-06",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "a fake answer"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": USAGE,
            },
        )

    def _anthropic(self, request: dict[str, Any]) -> None:
        model = request.get("model", "claude-sonnet-4-5")
        if model == "fail-model":
            self._json(500, {"type": "error", "error": {"type": "api_error", "message": "failed"}})
            return
        message = {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": "a fake answer"}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": ANTHROPIC_USAGE,
        }
        if not request.get("stream"):
            self._json(200, message)
            return
        start = {**message, "content": [], "stop_reason": None}
        start["usage"] = {**ANTHROPIC_USAGE, "output_tokens": 1}
        self._events(
            [
                ("message_start", {"type": "message_start", "message": start}),
                (
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": 0,
                        "content_block": {"type": "text", "text": ""},
                    },
                ),
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": "a fake answer"},
                    },
                ),
                ("content_block_stop", {"type": "content_block_stop", "index": 0}),
                (
                    "message_delta",
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                        "usage": {"output_tokens": ANTHROPIC_USAGE["output_tokens"]},
                    },
                ),
                ("message_stop", {"type": "message_stop"}),
            ]
        )

    def _gemini(self, path: str) -> None:
        model = path.rsplit("/models/", maxsplit=1)[-1].split(":", maxsplit=1)[0]
        if model == "fail-model":
            error = {"code": 500, "message": "the fake model failed", "status": "INTERNAL"}
            self._json(500, {"error": error})
            return
        answer = {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"text": "a fake answer"}]},
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": GEMINI_USAGE,
            "modelVersion": model,
            "responseId": "fake-response",
        }
        if ":streamGenerateContent" not in path:
            self._json(200, answer)
            return
        first = {**answer, "usageMetadata": {"promptTokenCount": 1000}}
        first["candidates"] = [
            {"content": {"role": "model", "parts": [{"text": "a fake"}]}, "index": 0}
        ]
        last = {**answer}
        last["candidates"] = [
            {
                **answer["candidates"][0],
                "content": {"role": "model", "parts": [{"text": " answer"}]},
            }
        ]
        self._events([(None, first), (None, last)])

    def _events(self, events: list[tuple[str | None, dict[str, Any]]]) -> None:
        """Server-sent events (with an ``event:`` line where the API names them)."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for name, data in events:
            head = f"event: {name}\n" if name else ""
            self.wfile.write(f"{head}data: {json.dumps(data)}\n\n".encode())

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _chunks(model: str) -> Iterator[dict[str, Any]]:
    base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1_764_000_000}
    base["model"] = f"{model}-2024-08-06"
    for piece in ("a fake", " answer"):
        yield {
            **base,
            "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
        }
    yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    yield {**base, "choices": [], "usage": USAGE}


@contextmanager
def fake_llm() -> Iterator[str]:
    """Run the server for a block; yields its base URL (``…/v1``)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"  # OpenAI's base URL
    finally:
        server.shutdown()
        server.server_close()
