"""The Pub/Sub message contract between producers (ingest, the backend client) and the sink.

A message carries a batch of stored-form events: validated, sampled and pseudonymised, each with
its server ``received_at`` and ``sample_rate``. Its body is JSON ``{"v": 1, "events": [...]}``;
its attributes say the envelope version, the event count, the environment and the producer,
plus the trace context. Batches are split so no message is over :data:`MAX_MESSAGE_BYTES`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import msgspec
import orjson

from shared.errors import ContractViolation

MESSAGE_VERSION = 1
#: Well under Pub/Sub's 10 MB per message (and per publish request).
MAX_MESSAGE_BYTES = 4_000_000
#: Pub/Sub allows 1,000 messages per publish request; a batch message holds at most this many.
MAX_EVENTS_PER_MESSAGE = 1000


class StoredEvent(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One event in the form it is stored: no raw user id, PII rules applied.

    ``props`` is a dict, or the props struct that ingest's fast path decoded (see
    ``shared.contract_codec``); both encode to the same JSON object.
    """

    event_id: str
    name: str
    version: int
    category: str
    event_ts: datetime
    received_at: datetime
    session_id: str
    props: Any
    sample_rate: float
    user_key: str | None = None
    key_id: str | None = None
    conversation_id: str | None = None
    app_version: str | None = None

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready form used in Pub/Sub messages."""
        return {
            "event_id": self.event_id,
            "name": self.name,
            "version": self.version,
            "category": self.category,
            "event_ts": self.event_ts.isoformat(),
            "received_at": self.received_at.isoformat(),
            "session_id": self.session_id,
            "user_key": self.user_key,
            "key_id": self.key_id,
            "conversation_id": self.conversation_id,
            "app_version": self.app_version,
            "props": msgspec.to_builtins(self.props),
            "sample_rate": self.sample_rate,
        }

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> StoredEvent:
        """Parse the wire form back; a :class:`ContractViolation` names what is wrong."""
        try:
            return cls(
                event_id=str(data["event_id"]),
                name=str(data["name"]),
                version=int(data["version"]),
                category=str(data["category"]),
                event_ts=datetime.fromisoformat(data["event_ts"]),
                received_at=datetime.fromisoformat(data["received_at"]),
                session_id=str(data["session_id"]),
                props=dict(data["props"]),
                sample_rate=float(data["sample_rate"]),
                user_key=data.get("user_key"),
                key_id=data.get("key_id"),
                conversation_id=data.get("conversation_id"),
                app_version=data.get("app_version"),
            )
        except KeyError as exc:
            raise ContractViolation(
                f"stored event lacks {exc.args[0]!r}", str(exc.args[0])
            ) from None
        except (TypeError, ValueError) as exc:
            raise ContractViolation(f"stored event is malformed: {exc}") from None


def message_attributes(count: int, environment: str, source: str) -> dict[str, str]:
    """Attributes every message carries (Pub/Sub needs at least one on push; always set)."""
    return {
        "envelope_version": str(MESSAGE_VERSION),
        "event_count": str(count),
        "environment": environment,
        "source": source,
    }


_ENCODER = msgspec.json.Encoder()


class _Message(msgspec.Struct):
    v: int
    events: list[StoredEvent]


def encode_batches(events: list[StoredEvent]) -> Iterator[tuple[bytes, int]]:
    """``(message body, event count)`` per message, splitting by size and count."""
    if len(events) <= MAX_EVENTS_PER_MESSAGE:
        body = _ENCODER.encode(_Message(MESSAGE_VERSION, events))  # the common case: one call
        if len(body) <= MAX_MESSAGE_BYTES:
            yield body, len(events)
            return
    chunk: list[bytes] = []
    size = 0
    encode = _ENCODER.encode
    for event in events:
        encoded = encode(event)
        if chunk and (
            size + len(encoded) > MAX_MESSAGE_BYTES or len(chunk) >= MAX_EVENTS_PER_MESSAGE
        ):
            yield _body(chunk), len(chunk)
            chunk, size = [], 0
        chunk.append(encoded)
        size += len(encoded) + 1
    if chunk:
        yield _body(chunk), len(chunk)


def _body(encoded: list[bytes]) -> bytes:
    return b'{"v":%d,"events":[' % MESSAGE_VERSION + b",".join(encoded) + b"]}"


def decode_batch(data: bytes) -> list[dict[str, Any]]:
    """The raw event dicts of a message body; a :class:`ContractViolation` if it is not one."""
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise ContractViolation("message body is not JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("events"), list):
        raise ContractViolation("message body is not {'v': 1, 'events': [...]}")
    if body.get("v") != MESSAGE_VERSION:
        raise ContractViolation(f"message version {body.get('v')!r} is not {MESSAGE_VERSION}")
    events: list[dict[str, Any]] = body["events"]
    return events
