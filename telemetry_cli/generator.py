"""Synthetic telemetry driven by the registry: realistic sessions, conversations and LLM calls.

Used by the benchmarks, the load tests and the demo mode of ``telemetry dev``. The same seed
gives the same output. Every event it makes passes the registry's schemas (a contract test
checks it for every event name), so a new registry event is generated without code changes;
a few events get hand-tuned values so that the data looks like real use.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

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
        self._latest = {spec.name: spec for spec in self.registry}
        self._counter = 0

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
        return props

    def llm_call_props(self) -> dict[str, Any]:
        """An LLM call with tokens, latency and a cost computed from the price table."""
        rng = self.rng
        provider, model, operation, typical_in, typical_out = rng.choice(LLM_PROFILES)
        status = rng.choices(["ok", "error", "timeout"], weights=[95, 3, 2])[0]
        if provider == "assemblyai":
            usage = Usage(audio_seconds=round(rng.uniform(20, 900), 1))
            latency = usage.audio_seconds * rng.uniform(80, 200)
        else:
            prompt = max(1, int(rng.gauss(typical_in, typical_in / 4)))
            cached = int(prompt * rng.uniform(0, 0.7)) if provider == "anthropic" else 0
            usage = Usage(
                input_tokens=prompt - cached,
                output_tokens=max(1, int(rng.gauss(typical_out, typical_out / 3))),
                cached_input_tokens=cached,
                reasoning_tokens=int(rng.uniform(100, 900)) if model.startswith("o3") else 0,
            )
            latency = rng.lognormvariate(7.0, 0.5)
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
        out = []
        ui_names = [n for n in _UI_WEIGHTS if n in self._latest]
        ui_weights = [_UI_WEIGHTS[n] for n in ui_names]
        others = [n for n in self._latest if n not in _UI_WEIGHTS]
        for _ in range(count):
            if rng.random() < 0.65 or not others:
                name = rng.choices(ui_names, weights=ui_weights)[0]
            else:
                name = rng.choice(others)
            spec = self._latest[name]
            ts += timedelta(milliseconds=rng.randint(50, 8000))
            event: dict[str, Any] = {
                "event_id": self._uuid(),
                "name": spec.name,
                "version": spec.version,
                "ts": min(ts, self.now).isoformat().replace("+00:00", "Z"),
                "session_id": session_id,
                "conversation_id": conversation,
                "props": self.props_for(spec),
            }
            if user_id:
                event["user_id"] = user_id
            out.append(event)
        return out

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
