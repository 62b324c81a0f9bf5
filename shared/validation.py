"""Validate beacons against the contract: the envelope schema, then each event's props schema.

Validators are compiled once (fastjsonschema) from the registry's JSON Schemas. A failure is a
:class:`ContractViolation` whose ``reason`` names the field and the rule, for example
``props.panel: 'x' is not one of ['bias', 'severity']``; it may quote the sender's own value
back to the sender, and is never logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import fastjsonschema

from shared.errors import ContractViolation
from shared.registry.loader import (
    ENVELOPE_SCHEMA_PATH,
    EVENT_SCHEMA_PATH,
    Registry,
    default_registry,
    load_json_schema,
)
from shared.storage_layout import HOT_RETENTION_DAYS, MAX_FUTURE_SKEW_HOURS

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
    exc: fastjsonschema.JsonSchemaValueException, prefix: str, root: str = "body"
) -> tuple[str, str]:
    """``(field, reason)`` for a schema failure, the field path relative to ``prefix``.

    ``root`` names the whole document when the failure is not about one field.
    """
    path = [str(p) for p in (exc.path or ["data"])[1:]]
    field = ".".join([prefix, *path]) if prefix else ".".join(path)
    field = field or root
    rule = exc.rule
    if rule == "enum":
        reason = f"{_short(exc.value)} is not one of {exc.rule_definition}"
    elif rule == "required":
        present = set(exc.value) if isinstance(exc.value, dict) else set()
        missing = [k for k in (exc.rule_definition or []) if k not in present]
        reason = f"missing required {', '.join(repr(k) for k in missing)}"
    elif rule == "additionalProperties":
        known = set((exc.definition or {}).get("properties", {}))
        extra = sorted(set(exc.value) - known) if isinstance(exc.value, dict) else []
        reason = f"undeclared {', '.join(repr(k) for k in extra)} (not in the schema)"
    else:
        message = exc.message
        message = message.split(" must ", 1)[1] if " must " in message else message
        reason = f"{_short(exc.value)} must {message}"
    return field, f"{field}: {reason}"


def parse_ts(value: str) -> datetime:
    """An RFC 3339 timestamp as an aware UTC datetime."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("timestamp has no time zone")
    return parsed.astimezone(UTC)


class EventValidator:
    """Compiled validators for the envelope, the event frame and each registry schema."""

    def __init__(self, registry: Registry | None = None) -> None:
        self.registry = registry or default_registry()
        self._envelope = fastjsonschema.compile(load_json_schema(ENVELOPE_SCHEMA_PATH))
        self._event = fastjsonschema.compile(load_json_schema(EVENT_SCHEMA_PATH))

    def validate_envelope(self, body: Any) -> tuple[dict[str, Any], list[Any]]:
        """``(context, events)`` of a beacon body, or the whole-request problem."""
        try:
            self._envelope(body)
        except fastjsonschema.JsonSchemaValueException as exc:
            field, reason = describe_failure(exc, "")
            raise ContractViolation(reason, field=field) from None
        return dict(body.get("context") or {}), list(body["events"])

    def validate_event(self, raw: Any, context: dict[str, Any] | None = None) -> ValidEvent:
        """Check one event (context filling its unset fields) and return it normalised."""
        if not isinstance(raw, dict):
            raise ContractViolation(f"event: {_short(raw)} must be an object", field="event")
        event = {k: v for k, v in (context or {}).items() if k in CONTEXT_FIELDS}
        event.update(raw)
        event.setdefault("version", 1)
        event.setdefault("props", {})
        try:
            self._event(event)
        except fastjsonschema.JsonSchemaValueException as exc:
            field, reason = describe_failure(exc, "", root="event")
            raise ContractViolation(reason, field=field) from None
        spec = self.registry.get(event["name"], event["version"])
        try:
            spec.validator(event["props"])
        except fastjsonschema.JsonSchemaValueException as exc:
            field, reason = describe_failure(exc, "props")
            raise ContractViolation(reason, field=field) from None
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


def check_event_time(
    ts: datetime, received_at: datetime, retention_days: int = HOT_RETENTION_DAYS
) -> None:
    """Refuse an event time too far in the future, or older than the hot tier keeps."""
    if ts > received_at + timedelta(hours=MAX_FUTURE_SKEW_HOURS):
        raise ContractViolation(
            f"ts: more than {MAX_FUTURE_SKEW_HOURS} h in the future of the server clock", "ts"
        )
    if ts < received_at - timedelta(days=retention_days):
        raise ContractViolation(
            f"ts: older than the hot tier's retention of {retention_days} days", "ts"
        )
