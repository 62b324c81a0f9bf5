"""Validate beacons against the contract: the envelope schema, then each event's props schema.

Validators are compiled once (jsonschema-rs) from the registry's JSON Schemas; the fast path is
one ``is_valid`` call per schema, and only a failing document is walked again for its first
error. A failure is a :class:`ContractViolation` whose ``reason`` names the field and the rule,
for example ``props.panel: 'x' is not one of ['bias', 'severity']``; it may quote the sender's
own value back to the sender, and is never logged.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from shared.contract.registry.keywords import SERVER_ONLY_CATEGORIES
from shared.contract.registry.loader import (
    ENVELOPE_SCHEMA_PATH,
    EVENT_SCHEMA_PATH,
    EventSpec,
    Registry,
    Validator,
    default_registry,
    load_json_schema,
)
from shared.errors import ContractViolation
from shared.policy.retention import HOT_RETENTION_DAYS, MAX_FUTURE_SKEW_HOURS

if TYPE_CHECKING:
    import jsonschema_rs

CONTEXT_FIELDS = ("session_id", "user_id", "conversation_id", "app_version")
_MAX_VALUE_REPR = 60


@dataclass(frozen=True, slots=True)
class ValidEvent:
    """An event that passed the contract, with its context applied and ``ts`` parsed."""

    event_id: str
    name: str
    version: int
    category: str
    ts: datetime
    session_id: str
    props: dict[str, Any]
    user_id: str | None = None
    conversation_id: str | None = None
    app_version: str | None = None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_VALUE_REPR else text[: _MAX_VALUE_REPR - 3] + "..."


def describe_failure(
    error: jsonschema_rs.ValidationError, prefix: str, root: str = "body"
) -> tuple[str, str]:
    """``(field, reason)`` for a schema failure, the field path relative to ``prefix``.

    ``root`` names the whole document when the failure is not about one field.
    """
    path = [str(p) for p in error.instance_path]
    field = ".".join([prefix, *path]) if prefix else ".".join(path)
    field = field or root
    import jsonschema_rs  # the slow path's: a valid beacon never needs the error kinds

    kind = error.kind
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.Enum):
        reason = f"{_short(error.instance)} is not one of {list(kind.options)}"
    elif isinstance(kind, jsonschema_rs.ValidationErrorKind.Required):
        reason = f"missing required {kind.property!r}"
    elif isinstance(kind, jsonschema_rs.ValidationErrorKind.AdditionalProperties):
        extra = ", ".join(repr(k) for k in kind.unexpected)
        reason = f"undeclared {extra} (not in the schema)"
    else:
        message = str(error.message)
        reason = message if len(message) <= 160 else message[:157] + "..."
    return field, f"{field}: {reason}"


def parse_ts(value: str) -> datetime:
    """An RFC 3339 timestamp as an aware UTC datetime."""
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("timestamp has no time zone")
    return parsed if parsed.tzinfo is UTC else parsed.astimezone(UTC)


def _check(validator: Validator, instance: Any, prefix: str, root: str) -> None:
    if validator.is_valid(instance):
        return
    error = validator.first_error(instance)
    if error is None:  # pragma: no cover - is_valid and iter_errors agree
        raise ContractViolation(f"{root}: does not match its schema", root)
    field, reason = describe_failure(error, prefix, root)
    raise ContractViolation(reason, field=field)


def check_props(spec: EventSpec, props: Any) -> None:
    """Refuse ``props`` that break ``spec``'s props schema, naming the field and the rule."""
    _check(spec.validator, props, "props", "props")


class EventValidator:
    """Compiled validators for the envelope, the event frame and each registry schema."""

    def __init__(self, registry: Registry | None = None) -> None:
        self.registry = registry or default_registry()
        # One schema per (name, version): the frame with that event's props schema in place,
        # so a valid event costs a single validation call. Failures are re-checked step by
        # step (frame, registry, props) to name the exact field and rule.
        # Each compiled on its event's first use: a cold instance compiles what it is sent.
        self._frame = load_json_schema(EVENT_SCHEMA_PATH)
        self._whole: dict[tuple[str, int], Validator] = {}

    @functools.cached_property
    def _envelope(self) -> Validator:
        """The beacon envelope's schema, compiled when a body first needs it (ingest's fast
        decoder checks a well-formed beacon without it)."""
        return Validator(load_json_schema(ENVELOPE_SCHEMA_PATH))

    @functools.cached_property
    def _event(self) -> Validator:
        """The event frame alone, compiled when a failing event is first re-checked."""
        return Validator(self._frame)

    def _whole_for(self, key: tuple[str, int]) -> Validator | None:
        whole = self._whole.get(key)
        if whole is None:
            spec = self.registry.specs.get(key)
            if spec is None:
                return None
            frame = self._frame
            whole = self._whole[key] = Validator(
                {**frame, "properties": {**frame["properties"], "props": spec.props_schema}}
            )
        return whole

    def validate_envelope(self, body: Any) -> tuple[dict[str, Any], list[Any]]:
        """``(context, events)`` of a beacon body, or the whole-request problem."""
        _check(self._envelope, body, "", "body")
        return dict(body.get("context") or {}), list(body["events"])

    def validate_event(
        self, raw: Any, context: dict[str, Any] | None = None, *, server: bool = False
    ) -> ValidEvent:
        """Check one event (context filling its unset fields) and return it normalised.

        A client's event (``server`` False) may not be of a server-only category: the pipeline's
        own events are built by the pipeline, and the sink rechecks them with ``server``.
        """
        if not isinstance(raw, dict):
            raise ContractViolation(f"event: {_short(raw)} must be an object", field="event")
        if context:
            event = {k: v for k, v in context.items() if k in CONTEXT_FIELDS}
            event.update(raw)
        else:
            event = dict(raw)
        event.setdefault("version", 1)
        event.setdefault("props", {})
        name, version = event.get("name"), event["version"]
        key = (name, version)
        # Only a (str, int) key can name a spec; anything else (even unhashable) is for the
        # frame check below to refuse with its reason.
        plausible = isinstance(name, str) and isinstance(version, int)
        whole = self._whole_for(key) if plausible else None  # type: ignore[arg-type]
        if whole is None or not whole.is_valid(event):
            _check(self._event, event, "", "event")
            check_props(self.registry.get(event["name"], event["version"]), event["props"])
        spec = self.registry.specs[key]  # type: ignore[index]
        if spec.category in SERVER_ONLY_CATEGORIES and not server:
            raise ContractViolation(
                f"name: {spec.name} is written by the pipeline itself and never accepted "
                "from a client",
                "name",
            )
        try:
            ts = parse_ts(event["ts"])
        except ValueError:
            raise ContractViolation(f"ts: {_short(event['ts'])} is not RFC 3339", "ts") from None
        return ValidEvent(
            event_id=event["event_id"].lower(),
            name=spec.name,
            version=spec.version,
            category=spec.category,
            ts=ts,
            session_id=event["session_id"],
            props=event["props"],
            user_id=event.get("user_id"),
            conversation_id=event.get("conversation_id"),
            app_version=event.get("app_version"),
        )


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """The event times a batch received at one instant accepts (computed once per batch)."""

    earliest: datetime
    latest: datetime
    retention_days: int

    @classmethod
    def around(cls, received_at: datetime, retention_days: int = HOT_RETENTION_DAYS) -> TimeWindow:
        """The window for a batch received at ``received_at``."""
        return cls(
            received_at - timedelta(days=retention_days),
            received_at + timedelta(hours=MAX_FUTURE_SKEW_HOURS),
            retention_days,
        )

    def check(self, ts: datetime) -> None:
        """Refuse an event time too far in the future, or older than the hot tier keeps."""
        if ts > self.latest:
            raise ContractViolation(
                f"ts: more than {MAX_FUTURE_SKEW_HOURS} h in the future of the server clock", "ts"
            )
        if ts < self.earliest:
            raise ContractViolation(
                f"ts: older than the hot tier's retention of {self.retention_days} days", "ts"
            )
