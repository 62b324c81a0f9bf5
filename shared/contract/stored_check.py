"""The sink's check of a stored-form event: ingest's contract, applied to the typed event.

A stored event passed the contract at its producer, but the sink stores what any publisher
sends: a producer with another release of the registry, or a hand-made message, must not put
rows into the hot tier that ingest would have refused. :class:`StoredEventCheck` decodes each
event once, straight into a :class:`~shared.contract.stored_event.StoredEvent` whose frame
fields carry the constraints of the frame schema (``event.schema.json``, translated by
:class:`~shared.contract.fast_decode.SchemaCompiler`, so the schema stays their one home), then
checks what the frame cannot say: the event is in the registry with that category, its
``event_id`` is in the stored (lower-case) form, and its props match the event's schema.

Props are checked on the typed values the decoder made: ``msgspec.convert`` into the event's
compiled props type (the same conservative translation ingest's fast path uses), and only
when that refuses does jsonschema-rs decide and name the rule. Nothing turns the event back
into a dict or its time back into text.
"""

from __future__ import annotations

from typing import Any

import msgspec

from shared.contract.fast_decode import SchemaCompiler, Unsupported
from shared.contract.registry.loader import EVENT_SCHEMA_PATH, EventSpec, load_json_schema
from shared.contract.stored_event import StoredEvent
from shared.contract.validation import EventValidator, check_props
from shared.errors import ContractViolation, describe_decode_error

#: Frame fields every stored event has, and those it may leave unset (``user_id`` is never
#: stored: a stored event carries its pseudonym, ``user_key``, instead).
_REQUIRED_FRAME_FIELDS = ("event_id", "name", "version", "session_id")
_OPTIONAL_FRAME_FIELDS = ("conversation_id", "app_version")
_NO_TYPE = object()


def checked_event_type(frame_schema: dict[str, Any]) -> type[StoredEvent]:
    """``StoredEvent`` with its frame fields constrained as ``frame_schema`` says."""
    compiler = SchemaCompiler("StoredFrame")
    properties = frame_schema["properties"]
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = [
        (name, compiler.compile(properties[name])) for name in _REQUIRED_FRAME_FIELDS
    ]
    fields += [
        (name, compiler.compile(properties[name]) | None, None) for name in _OPTIONAL_FRAME_FIELDS
    ]
    checked: type[StoredEvent] = msgspec.defstruct(  # type: ignore[assignment]
        "CheckedStoredEvent",
        fields,
        bases=(StoredEvent,),
        frozen=True,
        kw_only=True,
        gc=False,
    )
    return checked


class StoredEventCheck:
    """Decodes stored-form events and refuses what ingest would have refused."""

    def __init__(self, validator: EventValidator | None = None) -> None:
        self.validator = validator or EventValidator()
        self._decoder = msgspec.json.Decoder(
            checked_event_type(load_json_schema(EVENT_SCHEMA_PATH))
        )
        #: Each event version's compiled props type, on its first event (``_NO_TYPE`` when its
        #: schema has no faithful translation: jsonschema-rs then checks every such event).
        self._props_types: dict[tuple[str, int], Any] = {}

    def decode(self, raw: bytes | msgspec.Raw, where: str = "event") -> StoredEvent:
        """One stored event from its JSON, checked; :class:`ContractViolation` names the field
        (rooted at ``where``) and the rule."""
        try:
            event: StoredEvent = self._decoder.decode(raw)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise ContractViolation(*describe_decode_error(exc, where)) from None
        self.check(event, where)
        return event

    def check(self, event: StoredEvent, where: str = "event") -> None:
        """The checks of a decoded event that its frame's types cannot make."""
        if not isinstance(event.props, dict):
            raise ContractViolation(f"{where}.props: expected an object", f"{where}.props")
        if event.event_id != event.event_id.lower():
            raise ContractViolation(
                f"{where}.event_id: a stored event_id is lower-case", f"{where}.event_id"
            )
        try:
            spec = self.validator.registry.get(event.name, event.version)
        except ContractViolation as exc:
            raise _rooted(exc, where) from None
        if spec.category != event.category:
            raise ContractViolation(
                f"{where}.category: {event.category!r} is not the registry's {spec.category!r}",
                f"{where}.category",
            )
        kind = self._props_type(spec)
        if kind is not _NO_TYPE:
            try:
                msgspec.convert(event.props, kind, strict=True)
                return
            except msgspec.ValidationError:
                pass  # maybe a translation stricter than the schema: jsonschema-rs decides
        try:
            check_props(spec, event.props)
        except ContractViolation as exc:
            raise _rooted(exc, where) from None

    def _props_type(self, spec: EventSpec) -> Any:
        key = (spec.name, spec.version)
        kind = self._props_types.get(key)
        if kind is None:
            prefix = f"StoredProps_{spec.name.replace('.', '_')}_v{spec.version}_"
            try:
                kind = SchemaCompiler(prefix).compile(spec.props_schema)
            except Unsupported:
                kind = _NO_TYPE
            self._props_types[key] = kind
        return kind


def _rooted(exc: ContractViolation, where: str) -> ContractViolation:
    """``exc`` with its field and reason rooted at ``where`` (``events[2].props.x``)."""
    field = f"{where}.{exc.field}" if exc.field else where
    return type(exc)(f"{where}.{exc.reason}", field)
