"""Synthetic telemetry driven by the registry: realistic sessions, conversations and LLM calls.

Used by the benchmarks, the load tests and the demo mode of ``telemetry dev``. The same seed
gives the same output. Every event it makes passes the registry's schemas (a contract test
checks it for every event name), so a new registry event is generated without code changes;
a few events get hand-tuned values so that the data looks like real use.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.contract.registry.keywords import SERVER_ONLY_CATEGORIES
from shared.contract.registry.loader import EventSpec, Registry, default_registry
from shared.llm.pricing import PriceTable, Usage, default_price_table

#: (provider, model, operation, typical input tokens, typical output tokens)
LLM_PROFILES: tuple[tuple[str, str, str, int, int], ...] = (
    ("anthropic", "claude-sonnet-4", "bias_prefilter", 2400, 180),
    ("anthropic", "claude-haiku-4", "frame_detection", 1600, 90),
    ("anthropic", "claude-sonnet-4", "simulacra_classify", 3100, 240),
    ("openai", "gpt-4o-mini", "summarise", 5200, 420),
    ("openai", "o3-mini", "severity_review", 1900, 300),
    ("assemblyai", "universal", "transcribe", 0, 0),
)
_UI_WEIGHTS = {
    "node.expand": 30,
    "node.collapse": 12,
    "detail_panel.view": 25,
    "ui.performance": 15,
    "severity.override": 3,
    "bias.override": 3,
    "feedback.submit": 2,
    "consent.update": 1,
}


#: Shares of feedback reason codes: readers mostly agree with the analysis.
_FEEDBACK_REASONS = {
    "accurate": 50,
    "inaccurate": 12,
    "unclear": 10,
    "too_slow": 8,
    "missing_context": 10,
    "other": 10,
}
#: Simulacra levels 1-4 as the classifier usually sees them.
_SIMULACRA_LEVELS: tuple[int, ...] = (40, 30, 20, 10)
#: Per analysed statement: the chance of a bias flag, a frame (half of them implicit), a
#: steelmanning score, and of a second LLM call.
_BIAS_FLAG_P = 0.2
_FRAME_P = 0.3
_STEELMAN_P = 0.4
_SECOND_CALL_P = 0.5

#: The user whose sessions a ``runaway_user`` incident multiplies.
RUNAWAY_USER = "u-runaway"
#: The operation whose prompt a ``cache_collapse`` incident changes.
CACHE_COLLAPSE_OPERATION = "bias_prefilter"
#: What a planted incident does to the events made while it lasts.
INCIDENT_KINDS = {
    "llm_errors": "a fifth of LLM calls fail",
    "llm_latency": "LLM calls are eight times slower",
    "bias_flags": "most statements are flagged for a bias",
    "simulacra_shift": "the Simulacra level mix turns upside down",
    "token_burn": "LLM calls use ten times the tokens",
    "bad_client": "a client release sends a tenth of its node events with a negative depth",
    "runaway_user": f"one user ({RUNAWAY_USER}) runs half of all sessions, as a script would",
    "cache_collapse": f"the {CACHE_COLLAPSE_OPERATION} prompt stops hitting the prompt cache",
}


@dataclass(frozen=True)
class Incident:
    """A planted anomaly: ``kind`` (one of :data:`INCIDENT_KINDS`) from ``start`` to ``end``."""

    kind: str
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.kind not in INCIDENT_KINDS:
            raise ValueError(f"unknown incident {self.kind!r}; one of {sorted(INCIDENT_KINDS)}")


class EventGenerator:
    """Makes sessions of wire-format events from a seed."""

    def __init__(
        self,
        seed: int = 0,
        registry: Registry | None = None,
        prices: PriceTable | None = None,
        now: datetime | None = None,
    ) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - synthetic data, not security
        self.registry = registry or default_registry()
        self.prices = prices or default_price_table()
        self.now = now or datetime.now(UTC)
        # What clients send: the pipeline's own events are never theirs to send.
        self._latest = {
            spec.name: spec for spec in self.registry if spec.category not in SERVER_ONLY_CATEGORIES
        }
        self._counter = 0
        self.incidents: tuple[Incident, ...] = ()
        self._active: frozenset[str] = frozenset()

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _value(self, name: str, schema: dict[str, Any]) -> Any:
        rng = self.rng
        if "enum" in schema:
            return rng.choice(schema["enum"])
        declared = schema.get("type")
        kind = (
            next((t for t in declared if t != "null"), "string")
            if isinstance(declared, list)
            else declared
        )
        if kind == "boolean":
            return rng.random() < 0.5
        if kind in ("integer", "number"):
            low = schema.get("minimum", 0)
            high = min(schema.get("maximum", low + 1000), low + 5000)
            if kind == "integer":
                return rng.randint(int(low), int(high))
            return round(rng.uniform(float(low), float(high)), 3)
        limit = int(schema.get("maxLength", 32))
        if name.endswith("email"):
            return f"person{rng.randint(1, 500)}@example.com"[:limit]
        if name.endswith("_id"):
            return f"{name[0]}-{rng.randint(1, 999)}"[:limit]
        if "pattern" in schema:
            return f"v{rng.randint(1, 9)}.{rng.randint(0, 9)}"[:limit]
        return f"{name}-{rng.randint(1, 99)}"[:limit]

    def props_for(self, spec: EventSpec) -> dict[str, Any]:
        """Plausible props for any registry event (required always, optional most times)."""
        schema = spec.props_schema
        required = set(schema.get("required", []))
        props = {}
        for name, sub in schema.get("properties", {}).items():
            if name in required or self.rng.random() < 0.6:
                props[name] = self._value(name, sub)
        if spec.name == "ui.performance":
            props["name"] = self.rng.choice(["map.render", "panel.open", "search.results"])
            props["duration_ms"] = round(self.rng.lognormvariate(4.5, 0.6), 2)
        if spec.name == "llm.call":
            props = self.llm_call_props()
        rng = self.rng
        if spec.name == "feedback.submit":
            props["reason"] = rng.choices(*zip(*_FEEDBACK_REASONS.items(), strict=True))[0]
        if spec.name == "simulacra.classified":
            levels = _SIMULACRA_LEVELS
            if "simulacra_shift" in self._active:
                levels = tuple(reversed(levels))
            props["level"] = rng.choices((1, 2, 3, 4), weights=levels)[0]
        if "speaker_id" in props:  # a few dozen people speak, many times each
            props["speaker_id"] = f"speaker-{rng.randint(1, 40)}"
        if spec.name == "node.expand" and "bad_client" in self._active and rng.random() < 0.4:
            props["depth"] = -1  # refused by the registry's minimum: ingest counts it
        if spec.name == "steelman.scored":
            props["score"] = round(rng.betavariate(6, 3), 3)
        if spec.name == "frame.detected" and "implicit" in props:
            props["implicit"] = rng.random() < 0.5
        return props

    def llm_call_props(self) -> dict[str, Any]:
        """An LLM call with tokens, latency and a cost computed from the price table."""
        rng = self.rng
        provider, model, operation, typical_in, typical_out = rng.choice(LLM_PROFILES)
        failing = "llm_errors" in self._active
        status = rng.choices(
            ["ok", "error", "timeout"], weights=[80, 15, 5] if failing else [995, 3, 2]
        )[0]
        if provider == "assemblyai":
            usage = Usage(audio_seconds=round(rng.uniform(20, 900), 1))
            latency = usage.audio_seconds * rng.uniform(80, 200)
        else:
            burn = 10 if "token_burn" in self._active else 1
            prompt = max(1, int(rng.gauss(typical_in, typical_in / 4))) * burn
            cached = int(prompt * rng.uniform(0, 0.7)) if provider == "anthropic" else 0
            if "cache_collapse" in self._active and operation == CACHE_COLLAPSE_OPERATION:
                cached = 0
            usage = Usage(
                input_tokens=prompt - cached,
                output_tokens=max(1, int(rng.gauss(typical_out, typical_out / 3))),
                cached_input_tokens=cached,
                reasoning_tokens=int(rng.uniform(100, 900)) if model.startswith("o3") else 0,
            )
            latency = rng.lognormvariate(7.0, 0.5) * (8 if "llm_latency" in self._active else 1)
        if status != "ok":
            usage = Usage(input_tokens=usage.input_tokens)
        cost = self.prices.cost(provider, model, usage)
        props: dict[str, Any] = {
            "provider": provider,
            "model": model,
            "operation": operation,
            "latency_ms": round(latency, 1),
            "status": status,
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cached_input_tokens": usage.cached_input_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
            "reasoning_tokens": usage.reasoning_tokens,
            "cost_usd": float(cost.usd) if cost.usd is not None else None,
            "price_version": cost.price_version,
            "retry_count": rng.choices([0, 1, 2], weights=[90, 8, 2])[0],
            "fallback_used": status != "ok" and rng.random() < 0.5,
            "streamed": rng.random() < 0.3,
        }
        if usage.audio_seconds:
            props["audio_seconds"] = usage.audio_seconds
        if status != "ok":
            props["error_type"] = "TimeoutError" if status == "timeout" else "APIStatusError"
        return props

    def session(self, events: int | None = None) -> list[dict[str, Any]]:
        """One session's events (wire format, context fields set on each event)."""
        rng = self.rng
        self._counter += 1
        session_id = f"s-{self._uuid()[:13]}"
        user_id = f"u-{rng.randint(1, 5000)}" if rng.random() < 0.7 else None
        conversation = f"c-{rng.randint(1, 20000)}"
        count = events or rng.randint(5, 40)
        ts = self.now - timedelta(minutes=rng.uniform(1, 55))
        runaway = any(i.kind == "runaway_user" and i.start <= ts < i.end for i in self.incidents)
        if runaway and rng.random() < 0.5:
            user_id = RUNAWAY_USER
        out: list[dict[str, Any]] = []
        ui_names = [n for n in _UI_WEIGHTS if n in self._latest]
        ui_weights = [_UI_WEIGHTS[n] for n in ui_names]
        while len(out) < count:
            ts += timedelta(milliseconds=rng.randint(50, 8000))
            at = min(ts, self.now)
            self._active = frozenset(i.kind for i in self.incidents if i.start <= at < i.end)
            if rng.random() < 0.65:
                names = [rng.choices(ui_names, weights=ui_weights)[0]]
            else:
                names = self._analysis()
            for name in names:
                spec = self._latest[name]
                event: dict[str, Any] = {
                    "event_id": self._uuid(),
                    "name": spec.name,
                    "version": spec.version,
                    "ts": at.isoformat().replace("+00:00", "Z"),
                    "session_id": session_id,
                    "conversation_id": conversation,
                    "props": self.props_for(spec),
                }
                if user_id:
                    event["user_id"] = user_id
                out.append(event)
        del out[count:]
        return out

    def _analysis(self) -> list[str]:
        """The events of the backend analysing one statement (its LLM calls among them)."""
        rng = self.rng
        flag_p = 0.7 if "bias_flags" in self._active else _BIAS_FLAG_P
        names = ["llm.call", "simulacra.classified"]
        for name, chance in (
            ("bias.flagged", flag_p),
            ("frame.detected", _FRAME_P),
            ("steelman.scored", _STEELMAN_P),
            ("llm.call", _SECOND_CALL_P),
        ):
            if name in self._latest and rng.random() < chance:
                names.append(name)
        others = [n for n in self._latest if n not in _UI_WEIGHTS and n not in names]
        if others and rng.random() < 0.02:  # a registry event with no hand-tuned place
            names.append(rng.choice(others))
        return [n for n in names if n in self._latest]

    def history(
        self,
        start: datetime,
        end: datetime,
        sessions_per_hour: int,
        incidents: Iterable[Incident] = (),
    ) -> Iterator[list[dict[str, Any]]]:
        """Sessions spread evenly over ``[start, end)``, with ``incidents`` planted: what a
        backtest replays. Yields one session's events at a time."""
        self.incidents = tuple(incidents)
        saved = self.now
        try:
            hours = max(1, round((end - start).total_seconds() / 3600))
            for hour in range(hours):
                for _ in range(sessions_per_hour):
                    offset = timedelta(hours=hour + self.rng.random())
                    self.now = min(end, start + offset + timedelta(minutes=55))
                    yield self.session()
        finally:
            self.now, self.incidents, self._active = saved, (), frozenset()

    def envelopes(self, sessions: int, batch_size: int = 50) -> Iterator[dict[str, Any]]:
        """Beacon bodies for ``sessions`` sessions, each at most ``batch_size`` events."""
        for _ in range(sessions):
            events = self.session()
            for start in range(0, len(events), batch_size):
                chunk = events[start : start + batch_size]
                yield {"context": {"app_version": "1.8.0"}, "events": chunk}

    def events(self, count: int) -> list[dict[str, Any]]:
        """Exactly ``count`` events, across as many sessions as needed."""
        out: list[dict[str, Any]] = []
        while len(out) < count:
            out.extend(self.session())
        return out[:count]
