"""The contract compiled to msgspec types: the fast way to accept a valid beacon.

Validating a 50-event beacon with jsonschema-rs and building Python dicts costs about 15 µs
per event, three times what the whole ingest budget allows. msgspec decodes JSON straight into
typed structs and checks types, lengths, ranges, enums and patterns while it parses, at about
1 µs per event. This module translates the registry's JSON Schemas (still the one source of
truth) into msgspec types, for the subset of JSON Schema the registry uses.

The translation is *conservative*: whatever msgspec accepts, the JSON Schema accepts too.
Where the two could disagree (an integer written ``5.0``, a keyword outside the subset, a
pattern construct whose meaning differs between ECMA 262 and Python) the msgspec type is
stricter or absent, and the caller falls back to jsonschema-rs, which decides and names the
reason. So a refusal here is never an answer, only a reason to look again.
"""

from __future__ import annotations

import keyword
import re
from datetime import datetime
from typing import Annotated, Any, Literal, Union

import msgspec

from shared.contract.registry.keywords import NON_VALIDATING_KEYWORDS, SERVER_ONLY_CATEGORIES
from shared.contract.registry.loader import (
    ENVELOPE_SCHEMA_PATH,
    EVENT_SCHEMA_PATH,
    Registry,
    load_json_schema,
)
from shared.contract.validation import CONTEXT_FIELDS

_TYPE_KEYWORDS: dict[str, frozenset[str]] = {
    "string": frozenset({"maxLength", "minLength", "pattern", "enum", "format"}),
    "integer": frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "enum"}),
    "number": frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}),
    "boolean": frozenset(),
    "null": frozenset(),
    "object": frozenset({"properties", "required", "additionalProperties"}),
    "array": frozenset({"items", "minItems", "maxItems"}),
}
#: Escapes whose meaning is the same in ECMA 262 and in Python's ``re`` with ASCII matching.
_SAME_ESCAPES = frozenset("dDwWsStnrfv0.\\/^$|?*+()[]{}-")
_LINE_END_FREE_DOT = "[^\\n\\r\\u2028\\u2029]"


class Unsupported(Exception):
    """A schema construct with no faithful msgspec translation (that schema takes the slow way)."""


def translate_pattern(pattern: str) -> str:
    """An ECMA 262 ``pattern`` as a Python regex that matches no string the original refuses.

    ``$`` becomes ``\\Z`` (Python's ``$`` also matches before a final newline), ``.`` stops at
    every ECMA line terminator, and ``\\d \\w \\s`` are ASCII-only. Constructs whose meaning
    differs or which are rarely worth it (look-around, back-references, ``\\p``, ``\\b``)
    raise :class:`Unsupported`.
    """
    out: list[str] = ["(?a)"]
    index = 0
    in_class = False
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            escaped = pattern[index + 1 : index + 2]
            if escaped not in _SAME_ESCAPES or not escaped:
                raise Unsupported(f"pattern escape \\{escaped}")
            out.append(char + escaped)
            index += 2
            continue
        if in_class:
            if char == "[":
                raise Unsupported("nested [ in a character class")
            if char == "]":
                in_class = False
            out.append(char)
        elif char == "[":
            in_class = True
            out.append(char)
        elif char == "(" and pattern[index + 1 : index + 2] == "?":
            if pattern[index + 2 : index + 3] != ":":
                raise Unsupported("pattern group (?...")
            out.append("(?:")
            index += 3
            continue
        elif char == "$":
            out.append("\\Z")
        elif char == ".":
            out.append(_LINE_END_FREE_DOT)
        else:
            out.append(char)
        index += 1
    if in_class:
        raise Unsupported("unclosed character class")
    translated = "".join(out)
    try:
        re.compile(translated)
    except re.error as exc:
        raise Unsupported(f"pattern does not compile in Python: {exc}") from None
    return translated


def _check_keywords(schema: dict[str, Any], allowed: frozenset[str]) -> None:
    unknown = set(schema) - allowed - NON_VALIDATING_KEYWORDS - {"type"}
    if unknown:
        raise Unsupported(f"keywords {sorted(unknown)}")


def _number_meta(schema: dict[str, Any]) -> dict[str, Any]:
    bounds = {
        "minimum": "ge",
        "maximum": "le",
        "exclusiveMinimum": "gt",
        "exclusiveMaximum": "lt",
    }
    meta: dict[str, Any] = {}
    for keyword_name, meta_name in bounds.items():
        if keyword_name in schema:
            value = schema[keyword_name]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise Unsupported(f"{keyword_name} is not a number")
            meta[meta_name] = value
    return meta


def _annotated(base: Any, meta: dict[str, Any]) -> Any:
    return Annotated[base, msgspec.Meta(**meta)] if meta else base


class SchemaCompiler:
    """Translates JSON Schemas into msgspec types (structs are named after ``prefix``)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._count = 0

    def compile(self, schema: Any, overrides: dict[str, Any] | None = None) -> Any:
        """The msgspec type for ``schema``; :class:`Unsupported` when none is faithful.

        ``overrides`` replaces the types of top-level properties (``(type, default)``).
        """
        if not isinstance(schema, dict):
            raise Unsupported("a schema that is not an object")
        declared = schema.get("type")
        if isinstance(declared, str):
            types = [declared]
        elif isinstance(declared, list) and declared and all(isinstance(t, str) for t in declared):
            types = list(dict.fromkeys(declared))
        elif declared is None and "enum" in schema:
            types = sorted({_json_type(v) for v in schema["enum"]})
        else:
            raise Unsupported("a schema without a usable type")
        allowed = frozenset().union(*(_TYPE_KEYWORDS.get(t, frozenset()) for t in types))
        if any(t not in _TYPE_KEYWORDS for t in types):
            raise Unsupported(f"type {types}")
        _check_keywords(schema, allowed)
        if "enum" in schema and len(types) != 1:
            raise Unsupported("an enum over several types")
        members = [self._one(t, schema, overrides) for t in types]
        return members[0] if len(members) == 1 else Union[tuple(members)]  # noqa: UP007

    def _one(self, kind: str, schema: dict[str, Any], overrides: dict[str, Any] | None) -> Any:
        if "enum" in schema and kind in ("string", "integer"):
            values = schema["enum"]
            python = str if kind == "string" else int
            if not values or not all(
                isinstance(v, python) and not isinstance(v, bool) for v in values
            ):
                raise Unsupported("an enum whose values are not all of its type")
            return Literal[tuple(values)]
        if kind == "string":
            meta: dict[str, Any] = {}
            if "maxLength" in schema:
                meta["max_length"] = int(schema["maxLength"])
            if "minLength" in schema:
                meta["min_length"] = int(schema["minLength"])
            if "pattern" in schema:
                meta["pattern"] = translate_pattern(str(schema["pattern"]))
            if "format" in schema:
                raise Unsupported(f"format {schema['format']}")
            return _annotated(str, meta)
        if kind == "integer":
            return _annotated(int, _number_meta(schema))
        if kind == "number":
            meta = _number_meta(schema)
            return Union[_annotated(int, meta), _annotated(float, meta)]  # noqa: UP007
        if kind == "boolean":
            return bool
        if kind == "null":
            return None
        if kind == "array":
            items = self.compile(schema["items"]) if "items" in schema else Any
            if items is Any:
                raise Unsupported("an array without items")
            meta = {}
            if "minItems" in schema:
                meta["min_length"] = int(schema["minItems"])
            if "maxItems" in schema:
                meta["max_length"] = int(schema["maxItems"])
            return _annotated(list[items], meta)  # type: ignore[valid-type]
        return self._struct(schema, overrides or {})

    def _struct(self, schema: dict[str, Any], overrides: dict[str, Any]) -> Any:
        if schema.get("additionalProperties") is not False:
            raise Unsupported("an object that allows undeclared properties")
        required = set(schema.get("required") or [])
        properties: dict[str, Any] = schema.get("properties") or {}
        if not required <= set(properties):
            raise Unsupported("a required property that is not declared")
        fields: list[tuple[str, Any, Any]] = []
        rename: dict[str, str] = {}
        for position, (name, subschema) in enumerate(properties.items()):
            attribute = attribute_name(name, position)
            if attribute != name:
                rename[attribute] = name
            if name in overrides:
                kind, default = overrides[name]
                fields.append((attribute, kind, default))
            elif name in required:
                fields.append((attribute, self.compile(subschema), msgspec.NODEFAULT))
            else:
                kind = self.compile(subschema)
                fields.append((attribute, Union[kind, msgspec.UnsetType], msgspec.UNSET))  # noqa: UP007
        self._count += 1
        return msgspec.defstruct(
            f"{self.prefix}{self._count}",
            fields,
            kw_only=True,
            forbid_unknown_fields=True,
            rename=rename or None,
            gc=False,  # plain data, never in a cycle: kept out of the garbage collector's way
        )


def attribute_name(name: str, position: int) -> str:
    """The struct attribute for JSON property ``name`` (keywords and odd names get a stand-in)."""
    if name.isidentifier() and not keyword.iskeyword(name) and not name.startswith("_"):
        return name
    return f"field_{position}"


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    raise Unsupported("an enum value that is not a scalar")


def props_decoder(
    name: str, version: int, schema: dict[str, Any]
) -> msgspec.json.Decoder[Any] | None:
    """The compiled props of one event version, or None when its schema has no faithful type."""
    try:
        kind = SchemaCompiler(f"Props_{name.replace('.', '_')}_v{version}_").compile(schema)
    except Unsupported:
        return None
    return msgspec.json.Decoder(kind)


#: RFC 3339 ``date-time`` in its strict form (upper-case ``T``/``Z``, at most 9 fraction
#: digits); anything else takes the slow way, where jsonschema-rs decides.
RFC3339 = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})$"


class ContractCodec:
    """msgspec decoders for the envelope, the event frame and every translatable props schema.

    A beacon decodes in one pass into its context and event frames (props left as raw JSON
    for their own decoder). When one frame fails, the envelope is decoded again with raw
    events so each can be tried alone. Every ``None`` returned here means "ask jsonschema-rs"
    (see the module docstring). The two string checks with patterns, ``event_id`` and ``ts``,
    are left to the caller as compiled Python regexes (:attr:`event_id_pattern`,
    :attr:`timestamp_pattern`): msgspec's own pattern check costs twice as much per call.
    """

    def __init__(
        self,
        envelope_schema: dict[str, Any],
        frame_schema: dict[str, Any],
        props_schemas: dict[tuple[str, int], dict[str, Any]],
    ) -> None:
        timestamp = Annotated[str, msgspec.Meta(max_length=64)]
        #: The ``ts``/``sent_at`` shape and the ``event_id`` pattern, checked in Python.
        self.timestamp_pattern = re.compile(translate_pattern(RFC3339))
        frame = SchemaCompiler("Frame")
        properties = frame_schema["properties"]
        event_id = dict(properties["event_id"])
        self.event_id_pattern = re.compile(translate_pattern(event_id.pop("pattern", "")))
        overrides: dict[str, Any] = {
            "event_id": (frame.compile(event_id), msgspec.NODEFAULT),
            "props": (msgspec.Raw, msgspec.Raw(b"{}")),
            "version": (frame.compile(properties["version"]), 1),
            "ts": (timestamp, msgspec.NODEFAULT),
        }
        for name in CONTEXT_FIELDS:  # the context may fill them, so the frame may lack them
            overrides[name] = (
                Union[frame.compile(properties[name]), msgspec.UnsetType],  # noqa: UP007
                msgspec.UNSET,
            )
        self.frame_type = frame.compile(frame_schema, overrides=overrides)

        envelope = SchemaCompiler("Envelope")
        self.context_type = envelope.compile(envelope_schema["properties"]["context"])
        envelope_overrides = {
            "context": (self.context_type, msgspec.field(default_factory=self.context_type)),
            "sent_at": (Union[timestamp, msgspec.UnsetType], msgspec.UNSET),  # noqa: UP007
        }

        def envelope_of(events: Any) -> Any:
            kind = Annotated[list[events], msgspec.Meta(min_length=1)]
            return envelope.compile(
                envelope_schema,
                overrides={**envelope_overrides, "events": (kind, msgspec.NODEFAULT)},
            )

        self._framed = msgspec.json.Decoder(envelope_of(self.frame_type))
        self._raw = msgspec.json.Decoder(envelope_of(msgspec.Raw))
        self._frame = msgspec.json.Decoder(self.frame_type)
        #: Compiled props decoders, each on its event version's first beacon (a cold
        #: instance compiles only what its first requests carry).
        self.props: dict[tuple[str, int], msgspec.json.Decoder[Any]] = {}
        self._uncompiled = dict(props_schemas)

    def props_decoder(self, key: tuple[str, int]) -> msgspec.json.Decoder[Any] | None:
        """The props decoder of one event version, compiled on first use; None when the event
        is unknown or its schema has no faithful type (the slow path decides)."""
        decoder = self.props.get(key)
        if decoder is None:
            schema = self._uncompiled.pop(key, None)
            if schema is not None:
                decoder = props_decoder(key[0], key[1], schema)
                if decoder is not None:
                    self.props[key] = decoder
        return decoder

    @classmethod
    def for_registry(cls, registry: Registry) -> ContractCodec:
        """The codec of the wire format v1 schemas and every event of ``registry``."""
        return cls(
            load_json_schema(ENVELOPE_SCHEMA_PATH),
            load_json_schema(EVENT_SCHEMA_PATH),
            {
                key: spec.props_schema
                for key, spec in registry.specs.items()
                if spec.category not in SERVER_ONLY_CATEGORIES  # the slow path refuses them
            },
        )

    def decode_envelope(self, raw: bytes) -> tuple[Any, list[Any], bool] | None:
        """``(context, events, framed)`` of a beacon, or None to ask jsonschema-rs.

        ``framed`` says the events are frame structs; otherwise they are raw JSON, for
        :meth:`decode_frame` one by one.
        """
        for decoder, framed in ((self._framed, True), (self._raw, False)):
            try:
                envelope = decoder.decode(raw)
                if envelope.sent_at is not msgspec.UNSET:
                    if not self.timestamp_pattern.search(envelope.sent_at):
                        return None
                    datetime.fromisoformat(envelope.sent_at)  # a real date, not just its shape
            except (msgspec.ValidationError, msgspec.DecodeError, ValueError, RecursionError):
                continue
            return envelope.context, envelope.events, framed
        return None

    def decode_frame(self, raw: bytes) -> Any | None:
        """One event's frame struct (props still raw JSON), or None to ask jsonschema-rs."""
        try:
            return self._frame.decode(raw)
        except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
            return None

    def context_dict(self, context: Any) -> dict[str, Any]:
        """A context struct as the dict the slow path takes (unset fields left out)."""
        return {
            name: value
            for name, value in msgspec.structs.asdict(context).items()
            if value is not msgspec.UNSET
        }
