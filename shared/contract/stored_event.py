"""The stored form of an event: what producers publish and the sink writes, one strict decoder.

A stored-form event passed the contract at its producer (ingest or the backend client): it is
validated, sampled and pseudonymised, and carries its server ``received_at`` and ``sample_rate``.
It never holds a raw user id. :func:`decode_stored_event` reads one back strictly: a field of
the wrong type is refused, never coerced (``"1"`` is not a version, ``2`` is not a session id),
and the error names the field's path. Whether the event is still one the registry knows is
:class:`shared.contract.stored_check.StoredEventCheck`'s question (the sink's decoder).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

from shared.errors import ContractViolation, describe_decode_error
from shared.policy.sampling import Category

#: A time that says its zone (a naive time is refused on decode).
AwareTime = Annotated[datetime, msgspec.Meta(tz=True)]
#: The share of events kept by sampling (1.0 keeps all; a stored event was kept, so never 0).
SampleRate = Annotated[float, msgspec.Meta(gt=0.0, le=1.0)]


class StoredEvent(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One event in the form it is stored: no raw user id, PII rules applied.

    ``props`` is a dict, or the props struct that ingest's fast path decoded (see
    ``shared.contract.fast_decode``); both encode to the same JSON object. The constraints in
    the annotations are checked when a message is decoded, not when ingest builds an event.
    """

    event_id: str
    name: str
    version: int
    category: Category
    event_ts: AwareTime
    received_at: AwareTime
    session_id: str
    props: Any
    sample_rate: SampleRate
    user_key: str | None = None
    key_id: str | None = None
    conversation_id: str | None = None
    app_version: str | None = None


_DECODER = msgspec.json.Decoder(StoredEvent)


def decode_stored_event(raw: bytes | msgspec.Raw, where: str = "event") -> StoredEvent:
    """One stored-form event from its JSON, strictly; :class:`ContractViolation` names the path."""
    try:
        event = _DECODER.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ContractViolation(*describe_decode_error(exc, where)) from None
    if not isinstance(event.props, dict):
        raise ContractViolation(f"{where}.props: expected an object", f"{where}.props")
    return event
