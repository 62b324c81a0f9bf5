"""Context that follows work into background tasks: conversation, session, user, the call.

Context variables are copied into asyncio tasks automatically, and into threads started with
``shared.observability.log.run_with_context``; so a conversation id set around a request
reaches every LLM call made on its behalf.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

_conversation: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "telemetry_conversation", default=None
)
_session: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "telemetry_session", default=None
)
_user: contextvars.ContextVar[str | None] = contextvars.ContextVar("telemetry_user", default=None)
_call: contextvars.ContextVar[CallRecord | None] = contextvars.ContextVar(
    "telemetry_call", default=None
)


@dataclass
class CallRecord:
    """What is known about the LLM call in progress; the wrapped code may add to it."""

    provider: str
    model: str
    operation: str
    retry_count: int = 0
    fallback_used: bool = False
    usage: dict[str, float] = field(default_factory=dict)
    first_chunk_at: float | None = None
    streamed: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def record_retry(self, count: int = 1) -> None:
        """Count retries done inside the call (by the caller or a retry library)."""
        self.retry_count += count

    def mark_fallback(self, model: str | None = None, provider: str | None = None) -> None:
        """Say a fallback answered; the model/provider that did, when it changed."""
        self.fallback_used = True
        if model:
            self.model = model
        if provider:
            self.provider = provider

    def set_usage(self, **tokens: float) -> None:
        """Give token counts (input_tokens, output_tokens, cached_input_tokens, cache_write_tokens,
        reasoning_tokens, audio_seconds) when the response objects do not carry them."""
        for key, value in tokens.items():
            if value is not None:
                self.usage[key] = value


def current_call() -> CallRecord | None:
    """The call being tracked in this context (None outside a tracked call)."""
    return _call.get()


def record_retry(retry_state: Any = None) -> None:
    """Count one retry of the current call; usable as tenacity's ``before_sleep`` hook."""
    call = _call.get()
    if call is not None:
        call.record_retry()


def mark_fallback(model: str | None = None, provider: str | None = None) -> None:
    """Say a fallback answered the current call."""
    call = _call.get()
    if call is not None:
        call.mark_fallback(model, provider)


@contextlib.contextmanager
def call_context(
    conversation_id: str | None = None, session_id: str | None = None, user_id: str | None = None
) -> Iterator[None]:
    """Attach a conversation, session and user to every event recorded inside the block."""
    tokens = []
    if conversation_id is not None:
        tokens.append((_conversation, _conversation.set(conversation_id)))
    if session_id is not None:
        tokens.append((_session, _session.set(session_id)))
    if user_id is not None:
        tokens.append((_user, _user.set(user_id)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def current_ids() -> tuple[str | None, str | None, str | None]:
    """``(conversation_id, session_id, user_id)`` of this context."""
    return _conversation.get(), _session.get(), _user.get()


def _enter_call(record: CallRecord) -> contextvars.Token[CallRecord | None]:
    return _call.set(record)


def _exit_call(token: contextvars.Token[CallRecord | None]) -> None:
    _call.reset(token)
