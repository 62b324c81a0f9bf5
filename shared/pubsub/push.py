"""Unwrapping a Pub/Sub push: the message's data, attributes and id, and what is wrong with it.

Pub/Sub push POSTs ``{"message": {"data": <base64>, "attributes": {...}, "messageId": ...},
"subscription": ...}``; functions-framework hands the sink that ``message`` inside a CloudEvent.
A body whose ``data`` is not base64 is not dropped or replaced: its text is kept as it came, so
the sink can dead-letter the original with the reason (:attr:`PushedMessage.problem`).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

NOT_BASE64 = "message.data is not base64"


@dataclass(frozen=True)
class PushedMessage:
    """One pushed message: its bytes, attributes and id; ``problem`` when it is malformed."""

    data: bytes
    attributes: dict[str, str] = field(default_factory=dict)
    message_id: str | None = None
    problem: str | None = None


def unwrap_push(payload: Any, fallback_id: str | None = None) -> PushedMessage:
    """The message of a push body (or of the CloudEvent data functions-framework made of it)."""
    body: Mapping[str, Any] = payload if isinstance(payload, Mapping) else {}
    message = body.get("message")
    if not isinstance(message, Mapping):
        message = {}
    raw_attributes = message.get("attributes")
    attributes = (
        {str(k): str(v) for k, v in raw_attributes.items()}
        if isinstance(raw_attributes, Mapping)
        else {}
    )
    message_id = message.get("messageId") or message.get("message_id") or fallback_id
    encoded = message.get("data") or ""
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError, TypeError):
        original = encoded if isinstance(encoded, str) else repr(encoded)
        return PushedMessage(
            original.encode("utf-8", "surrogatepass"),
            attributes,
            str(message_id) if message_id else None,
            NOT_BASE64,
        )
    return PushedMessage(data, attributes, str(message_id) if message_id else None)
