"""The Pub/Sub message body: one encoder and one strict decoder, for the events topic and the DLQ.

A message carries a batch of stored-form events (``shared.contract.stored_event``) as JSON
``{"v": 1, "events": [...]}``; a dead-lettered message adds ``"reasons"``, one per event, and
keeps each event's original bytes, so a replay to the events topic is the same format. Its
attributes say the envelope version, the event count, the environment and the producer, plus
the trace context. Batches are split so no message is over :data:`MAX_MESSAGE_BYTES`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Literal

import msgspec

from shared.contract.stored_event import StoredEvent
from shared.errors import ContractViolation, describe_decode_error

MESSAGE_VERSION = 1
#: Well under Pub/Sub's 10 MB per message (and per publish request).
MAX_MESSAGE_BYTES = 4_000_000
#: Pub/Sub allows 1,000 messages per publish request; a batch message holds at most this many.
MAX_EVENTS_PER_MESSAGE = 1000


class MessageBody(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A decoded message: its events still as raw JSON, each decoded on its own.

    Decoding events one by one lets one malformed event be dead-lettered alone, with its
    original bytes, while the rest of the batch is stored.
    """

    v: Literal[1]
    events: list[msgspec.Raw]
    reasons: list[str] | msgspec.UnsetType = msgspec.UNSET


class _Outgoing(msgspec.Struct, omit_defaults=True):
    v: int
    events: Sequence[StoredEvent | msgspec.Raw]
    reasons: list[str] | msgspec.UnsetType = msgspec.UNSET


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(MessageBody)


def encode_message(
    events: Sequence[StoredEvent | msgspec.Raw], reasons: list[str] | None = None
) -> bytes:
    """The body of one message: stored events, or raw event bytes kept as they came."""
    outgoing = _Outgoing(MESSAGE_VERSION, events, msgspec.UNSET if reasons is None else reasons)
    return _ENCODER.encode(outgoing)


def encode_batches(events: list[StoredEvent]) -> Iterator[tuple[bytes, int]]:
    """``(message body, event count)`` per message, splitting by size and count."""
    if len(events) <= MAX_EVENTS_PER_MESSAGE:
        body = encode_message(events)  # the common case: one call
        if len(body) <= MAX_MESSAGE_BYTES:
            yield body, len(events)
            return
    chunk: list[msgspec.Raw] = []
    size = 0
    for event in events:
        encoded = msgspec.Raw(_ENCODER.encode(event))
        if chunk and (
            size + len(encoded) > MAX_MESSAGE_BYTES or len(chunk) >= MAX_EVENTS_PER_MESSAGE
        ):
            yield encode_message(chunk), len(chunk)
            chunk, size = [], 0
        chunk.append(encoded)
        size += len(encoded) + 1
    if chunk:
        yield encode_message(chunk), len(chunk)


def decode_message(data: bytes) -> MessageBody:
    """A message body, strictly; :class:`ContractViolation` says what is wrong with it."""
    try:
        return _DECODER.decode(data)
    except msgspec.ValidationError as exc:  # a subclass of DecodeError: first
        raise ContractViolation(*describe_decode_error(exc, "message")) from None
    except msgspec.DecodeError:
        raise ContractViolation("message body is not JSON", "message") from None


def message_attributes(count: int, environment: str, source: str) -> dict[str, str]:
    """Attributes every message carries (Pub/Sub needs at least one on push; always set)."""
    return {
        "envelope_version": str(MESSAGE_VERSION),
        "event_count": str(count),
        "environment": environment,
        "source": source,
    }


def event_dicts(data: bytes) -> list[dict[str, Any]]:
    """The events of a message body as plain dicts (operators, tests: no per-event checks)."""
    return [msgspec.json.decode(raw) for raw in decode_message(data).events]
