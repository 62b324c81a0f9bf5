"""Accepting a beacon: validation, the time window, sampling and pseudonymisation.

This is the one place where raw events become stored-form events, shared by the ingest
function and by the backend client, so both apply the same rules. Every event of a batch ends
in exactly one outcome: accepted, sampled out, or rejected with a reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
import orjson
from msgspec import UNSET

from shared.contract.fast_decode import ContractCodec
from shared.contract.stored_event import StoredEvent
from shared.contract.validation import EventValidator, TimeWindow
from shared.errors import ContractViolation
from shared.policy.privacy import PiiRules, Pseudonymiser
from shared.policy.sampling import SamplingPolicy


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why one event of a batch was refused."""

    index: int
    event_id: str | None
    reason: str
    field: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The form given back to the sender."""
        return {"index": self.index, "event_id": self.event_id, "reason": self.reason}


@dataclass
class IntakeResult:
    """The outcome of a batch: stored-form events to publish, and the counts."""

    accepted: list[StoredEvent] = field(default_factory=list)
    sampled_out: int = 0
    rejected: list[Rejection] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Events seen: every one counted exactly once."""
        return len(self.accepted) + self.sampled_out + len(self.rejected)

    def rejected_by_field(self) -> dict[str, int]:
        """Rejections counted per field (names only, never values): what we drop and why."""
        if not self.rejected:
            return {}
        return dict(Counter(r.field or "event" for r in self.rejected))

    def answer(self) -> dict[str, Any]:
        """The 202 body of the wire format."""
        return {
            "accepted": len(self.accepted),
            "sampled_out": self.sampled_out,
            "rejected": [r.to_json() for r in self.rejected],
        }


def _contains_nul(value: Any) -> bool:
    """True when any string in ``value`` holds U+0000, which PostgreSQL text and jsonb refuse.

    Walks with a stack, not recursion: a sender chooses how deep its JSON nests.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _check_utf8(raw: bytes) -> None:
    """Refuse a body that is not UTF-8: JSON text is, and no parser may guess otherwise."""
    if raw.isascii():
        return
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ContractViolation(
            f"body is not valid UTF-8 (byte {raw[exc.start]:#04x} at offset {exc.start})", "body"
        ) from None


def _event_id_of(raw: Any) -> str | None:
    if isinstance(raw, dict) and isinstance(raw.get("event_id"), str):
        return str(raw["event_id"])[:64]
    return None


@dataclass(slots=True)
class Beacon:
    """A beacon body that passed the envelope: its context and its still-unchecked events.

    ``fast`` beacons were decoded by msgspec: a context struct and events that are frame
    structs (``framed``) or raw JSON. The others were decoded by orjson and checked by
    jsonschema-rs (dicts). ``screen_nul`` says the body spells a NUL escape.
    """

    context: Any
    events: list[Any]
    fast: bool
    screen_nul: bool = True
    framed: bool = False

    def session_id(self) -> str | None:
        """The session the context names for every event (a browser's beacon), or None (a
        server's batch of many sessions names them per event)."""
        context = self.context
        value = context.get("session_id") if isinstance(context, dict) else None
        if context is not None and not isinstance(context, dict):
            value = getattr(context, "session_id", None)
        return value if isinstance(value, str) and value else None


class _BatchState:
    """What the events of one batch share: ids seen, sampling decisions, pseudonyms."""

    __slots__ = ("decisions", "policy", "pseudonyms", "received_at", "result", "seen", "window")

    def __init__(self, received_at: datetime, policy: SamplingPolicy) -> None:
        self.result = IntakeResult()
        self.seen: dict[str, int] = {}
        self.window = TimeWindow.around(received_at)
        self.received_at = received_at
        self.policy = policy
        self.decisions: dict[tuple[str, str], tuple[bool, float]] = {}
        self.pseudonyms: dict[str, tuple[str, str]] = {}


class Intake:
    """Turns raw events into stored-form events under one set of rules."""

    def __init__(
        self,
        validator: EventValidator,
        sampling: SamplingPolicy,
        pseudonymiser: Pseudonymiser,
    ) -> None:
        self.validator = validator
        self.sampling = sampling
        self.pseudonymiser = pseudonymiser
        self._codec: ContractCodec | None = None
        specs = validator.registry.specs
        self._categories = {key: spec.category for key, spec in specs.items()}
        self._pii = {key: PiiRules.of_schema(spec.props_schema) for key, spec in specs.items()}

    @property
    def codec(self) -> ContractCodec:
        """The registry compiled to msgspec types (built on first use)."""
        if self._codec is None:
            self._codec = ContractCodec.for_registry(self.validator.registry)
        return self._codec

    # -- whole bodies (ingest) --------------------------------------------------------------
    def read_beacon(self, raw: bytes) -> Beacon:
        """Parse and check a beacon body's envelope; :class:`ContractViolation` says why not."""
        _check_utf8(raw)
        screen_nul = b"\\u0000" in raw  # only a body spelling a NUL escape can hold one
        if not screen_nul:
            decoded = self.codec.decode_envelope(raw)
            if decoded is not None:
                context, events, framed = decoded
                return Beacon(context, events, fast=True, screen_nul=False, framed=framed)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            detail = str(exc).split(":", 1)[0]
            raise ContractViolation(f"body is not JSON ({detail})", "body") from None
        context, events = self.validator.validate_envelope(body)
        return Beacon(context, events, fast=False, screen_nul=screen_nul)

    def process_beacon(
        self, beacon: Beacon, received_at: datetime, incident: bool = False
    ) -> IntakeResult:
        """Decide the outcome of every event of a beacon read by :meth:`read_beacon`."""
        if not beacon.fast:
            return self.process_events(
                beacon.events, beacon.context, received_at, incident, beacon.screen_nul
            )
        state = _BatchState(received_at, self._policy(incident))
        codec = self.codec
        frames = beacon.events if beacon.framed else [codec.decode_frame(e) for e in beacon.events]
        slow_context: dict[str, Any] | None = None

        def slow(index: int) -> None:
            """Hand one event to jsonschema-rs, in its turn (duplicates count in order)."""
            nonlocal slow_context
            if slow_context is None:
                slow_context = codec.context_dict(beacon.context)
            raw = (
                msgspec.json.encode(frames[index]) if beacon.framed else bytes(beacon.events[index])
            )
            try:
                event = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:  # beyond orjson: too deep, a number too large
                detail = str(exc).split(":", 1)[0]
                reason = f"event: cannot be read as JSON ({detail})"
                state.result.rejected.append(Rejection(index, None, reason, "event"))
                return
            self._admit_slow(state, index, event, slow_context, False)

        self._admit_frames(state, frames, beacon.context, codec, slow)
        return state.result

    def _admit_frames(
        self,
        state: _BatchState,
        frames: list[Any],
        context: Any,
        codec: ContractCodec,
        slow: Callable[[int], None],
    ) -> None:
        """Admit every frame the fast way can, and pass the others to ``slow``.

        The slow way then either accepts an event msgspec was stricter about, or names the
        reason it is refused. This loop is the hot path of ingest: it keeps to local names.
        """
        event_id_ok = codec.event_id_pattern.search
        ts_ok = codec.timestamp_pattern.search
        fromisoformat = datetime.fromisoformat
        props_decoders = codec.props
        pii_rules = self._pii
        pseudonym = self.pseudonymiser.pseudonym_hex
        admit = self._admit
        ctx_session, ctx_user = context.session_id, context.user_id
        ctx_conversation, ctx_app = context.conversation_id, context.app_version
        for index, frame in enumerate(frames):
            if frame is None or not (event_id_ok(frame.event_id) and ts_ok(frame.ts)):
                slow(index)
                continue
            key = (frame.name, frame.version)
            props_decoder = props_decoders.get(key) or codec.props_decoder(key)
            if props_decoder is None:  # unknown event, or props beyond the translation
                slow(index)
                continue
            try:
                props = props_decoder.decode(frame.props)
                ts = fromisoformat(frame.ts)
            except (msgspec.ValidationError, msgspec.DecodeError, ValueError, RecursionError):
                slow(index)
                continue
            session_id = frame.session_id
            if session_id is UNSET:
                session_id = ctx_session
                if session_id is UNSET:
                    slow(index)
                    continue
            user_id = frame.user_id
            if user_id is UNSET:
                user_id = ctx_user
            conversation_id = frame.conversation_id
            if conversation_id is UNSET:
                conversation_id = ctx_conversation
            app_version = frame.app_version
            if app_version is UNSET:
                app_version = ctx_app
            pii = pii_rules[key]
            if pii:
                props = pii.apply(props, pseudonym)
            admit(
                state,
                index,
                frame.event_id.lower(),
                key,
                ts if ts.tzinfo is UTC else ts.astimezone(UTC),
                session_id,
                None if user_id is UNSET else user_id,
                None if conversation_id is UNSET else conversation_id,
                None if app_version is UNSET else app_version,
                props,
            )

    # -- events (ingest's fallback, the backend client) -------------------------------------
    def process_events(
        self,
        events: list[Any],
        context: dict[str, Any],
        received_at: datetime,
        incident: bool = False,
        screen_nul: bool = True,
    ) -> IntakeResult:
        """Decide each event's outcome; ``incident`` keeps every event (sampling override).

        ``screen_nul`` rejects events holding U+0000, which storage refuses; a caller that
        knows the raw body has none (ingest looks once per body) turns it off for speed.
        """
        state = _BatchState(received_at, self._policy(incident))
        context_nul = screen_nul and _contains_nul(context)
        for index, raw in enumerate(events):
            self._admit_slow(state, index, raw, context, screen_nul, context_nul)
        return state.result

    def _policy(self, incident: bool) -> SamplingPolicy:
        return self.sampling if not incident else SamplingPolicy(override=True)

    def _admit_slow(
        self,
        state: _BatchState,
        index: int,
        raw: Any,
        context: dict[str, Any],
        screen_nul: bool,
        context_nul: bool = False,
    ) -> None:
        """Validate one event with jsonschema-rs (naming the reason of a refusal) and admit it."""
        try:
            event = self.validator.validate_event(raw, context)
            if context_nul or (screen_nul and _contains_nul(raw)):
                raise ContractViolation(
                    "event: a string holds U+0000 (NUL), which storage refuses", "event"
                )
        except ContractViolation as exc:
            state.result.rejected.append(Rejection(index, _event_id_of(raw), exc.reason, exc.field))
            return
        key = (event.name, event.version)
        pii = self._pii[key]
        self._admit(
            state,
            index,
            event.event_id,
            key,
            event.ts,
            event.session_id,
            event.user_id,
            event.conversation_id,
            event.app_version,
            pii.apply(event.props, self.pseudonymiser.pseudonym_hex) if pii else event.props,
        )

    def _admit(
        self,
        state: _BatchState,
        index: int,
        event_id: str,
        key: tuple[str, int],
        ts: datetime,
        session_id: str,
        user_id: str | None,
        conversation_id: str | None,
        app_version: str | None,
        props: Any,
    ) -> None:
        """The checks every valid event goes through, then its outcome (``props`` PII-clean)."""
        result = state.result
        window = state.window
        if ts < window.earliest or ts > window.latest:
            try:
                window.check(ts)
            except ContractViolation as exc:
                result.rejected.append(Rejection(index, event_id, exc.reason, exc.field))
                return
        first = state.seen.get(event_id)
        if first is not None:
            reason = f"event_id: duplicate of the event at index {first}"
            result.rejected.append(Rejection(index, event_id, reason, "event_id"))
            return
        state.seen[event_id] = index
        category = self._categories[key]
        decision = state.decisions.get((session_id, category))
        if decision is None:
            decision = state.decisions[(session_id, category)] = state.policy.decide(
                session_id, category
            )
        keep, rate = decision
        if not keep:
            result.sampled_out += 1
            return
        user_key = key_id = None
        if user_id is not None:
            pair = state.pseudonyms.get(user_id)
            if pair is None:
                pair = state.pseudonyms[user_id] = self.pseudonymiser.pseudonym(user_id)
            key_id, user_key = pair
        result.accepted.append(
            StoredEvent(
                event_id=event_id,
                name=key[0],
                version=key[1],
                category=category,
                event_ts=ts,
                received_at=state.received_at,
                session_id=session_id,
                props=props,
                sample_rate=rate,
                user_key=user_key,
                key_id=key_id,
                conversation_id=conversation_id,
                app_version=app_version,
            )
        )
