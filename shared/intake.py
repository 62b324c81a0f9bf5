"""Accepting a beacon: validation, the time window, sampling and pseudonymisation.

This is the one place where raw events become stored-form events, shared by the ingest
function and by the backend client, so both apply the same rules. Every event of a batch ends
in exactly one outcome: accepted, sampled out, or rejected with a reason.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.errors import ContractViolation
from shared.privacy import Pseudonymiser
from shared.records import StoredEvent
from shared.sampling import SamplingPolicy
from shared.validation import EventValidator, TimeWindow


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
        return dict(Counter(r.field or "event" for r in self.rejected))

    def answer(self) -> dict[str, Any]:
        """The 202 body of the wire format."""
        return {
            "accepted": len(self.accepted),
            "sampled_out": self.sampled_out,
            "rejected": [r.to_json() for r in self.rejected],
        }


def _contains_nul(value: Any) -> bool:
    """True when any string in ``value`` holds U+0000, which PostgreSQL text and jsonb refuse."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_contains_nul(k) or _contains_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_contains_nul(v) for v in value)
    return False


def _event_id_of(raw: Any) -> str | None:
    if isinstance(raw, dict) and isinstance(raw.get("event_id"), str):
        return str(raw["event_id"])[:64]
    return None


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

    def process_envelope(
        self, body: Any, received_at: datetime, incident: bool = False, screen_nul: bool = True
    ) -> IntakeResult:
        """Validate a whole beacon body (raises :class:`ContractViolation` for its shape)."""
        context, events = self.validator.validate_envelope(body)
        return self.process_events(events, context, received_at, incident, screen_nul)

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
        result = IntakeResult()
        seen: dict[str, int] = {}
        window = TimeWindow.around(received_at)
        policy = self.sampling if not incident else SamplingPolicy(override=True)
        pseudonyms: dict[str, tuple[str, str]] = {}  # one HMAC per distinct user in a batch
        context_nul = screen_nul and _contains_nul(context)
        for index, raw in enumerate(events):
            try:
                event = self.validator.validate_event(raw, context)
                window.check(event.ts)
                if context_nul or (screen_nul and _contains_nul(raw)):
                    raise ContractViolation(
                        "event: a string holds U+0000 (NUL), which storage refuses", "event"
                    )
            except ContractViolation as exc:
                result.rejected.append(Rejection(index, _event_id_of(raw), exc.reason, exc.field))
                continue
            if event.event_id in seen:
                reason = f"event_id: duplicate of the event at index {seen[event.event_id]}"
                result.rejected.append(Rejection(index, event.event_id, reason, "event_id"))
                continue
            seen[event.event_id] = index
            keep, rate = policy.decide(event.session_id, event.category)
            if not keep:
                result.sampled_out += 1
                continue
            spec = self.validator.registry.get(event.name, event.version)
            user_key = key_id = None
            if event.user_id is not None:
                pair = pseudonyms.get(event.user_id)
                if pair is None:
                    pair = pseudonyms[event.user_id] = self.pseudonymiser.pseudonym(event.user_id)
                key_id, user_key = pair
            result.accepted.append(
                StoredEvent(
                    event_id=event.event_id,
                    name=event.name,
                    version=event.version,
                    category=event.category,
                    event_ts=event.ts,
                    received_at=received_at,
                    session_id=event.session_id,
                    props=self.pseudonymiser.apply_pii_rules(spec, event.props),
                    sample_rate=rate,
                    user_key=user_key,
                    key_id=key_id,
                    conversation_id=event.conversation_id,
                    app_version=event.app_version,
                )
            )
        return result
