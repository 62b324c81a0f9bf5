"""Operator switches that take effect without a deploy, read from one object in the bucket.

``gs://$TELEMETRY_BUCKET/config/runtime-flags.json`` holds, for now, the sampling incident
override: ``{"sampling_override_until": "<RFC 3339>", "reason": "..."}``. While that time is in
the future every sampling rate is 1.0. The override always expires, so a forgotten incident
does not keep full sampling (and its cost) forever. Functions re-read the object at most every
``TELEMETRY_FLAGS_TTL_S`` seconds, in the background: a request never waits on it, and a read
failure keeps the last known value. ``telemetry sampling`` sets, clears and shows it. Where the
object lives is the storage layer's (:class:`shared.storage.flags_object.GcsFlagStore`): the
caller hands a store in.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from shared.settings import Settings

logger = logging.getLogger(__name__)
FLAGS_OBJECT = "config/runtime-flags.json"


@dataclass(frozen=True)
class Flags:
    """The switches in force."""

    sampling_override_until: datetime | None = None
    reason: str | None = None

    def sampling_override(self, now: datetime) -> bool:
        """True while the incident override has not expired."""
        return self.sampling_override_until is not None and now < self.sampling_override_until

    @classmethod
    def parse(cls, raw: bytes | None) -> Flags:
        """Flags from the object's bytes (no object: no flags)."""
        if not raw:
            return cls()
        data = json.loads(raw)
        until = data.get("sampling_override_until")
        return cls(
            sampling_override_until=datetime.fromisoformat(until).astimezone(UTC)
            if until
            else None,
            reason=data.get("reason"),
        )

    def dump(self) -> bytes:
        """The object's bytes."""
        until = self.sampling_override_until
        return json.dumps(
            {"sampling_override_until": until.isoformat() if until else None, "reason": self.reason}
        ).encode()


class FlagStore(Protocol):
    """Where the flags object lives (like Powertools' feature_flags ``StoreProvider``)."""

    def read(self) -> bytes | None:
        """The object's bytes, or None when there is no object."""
        ...

    def write(self, data: bytes) -> None:
        """Replace the object."""
        ...


def write_flags(flags: Flags, store: FlagStore) -> None:
    """Store the flags object (operators, through ``telemetry sampling``)."""
    store.write(flags.dump())


def read_flags(store: FlagStore) -> Flags:
    """Read the flags object now."""
    return Flags.parse(store.read())


class RuntimeFlags:
    """A cached view of the flags object, refreshed in the background."""

    def __init__(self, settings: Settings, store: FlagStore) -> None:
        self.settings = settings
        self.store = store
        self._flags = Flags()
        self._fetched_at = float("-inf")
        self._refreshing = threading.Lock()
        self.failures = 0

    def refresh(self) -> Flags:
        """Re-read the object now; on failure keep the last value and count it."""
        try:
            self._flags = Flags.parse(self.store.read())
            self.failures = 0
        except Exception as exc:  # a read failure must never fail a request
            self.failures += 1
            if self.failures == 1:
                logger.warning("runtime flags unreadable", extra={"error_type": type(exc).__name__})
        self._fetched_at = time.monotonic()
        return self._flags

    def _refresh_in_background(self) -> None:
        if not self._refreshing.acquire(blocking=False):
            return

        def run() -> None:
            try:
                self.refresh()
            finally:
                self._refreshing.release()

        threading.Thread(target=run, name="runtime-flags", daemon=True).start()

    def current(self) -> Flags:
        """The flags as last read; starts a background refresh when older than the TTL."""
        if time.monotonic() - self._fetched_at >= self.settings.telemetry_flags_ttl_s:
            self._refresh_in_background()
        return self._flags

    def sampling_override(self, now: datetime | None = None) -> bool:
        """True when the environment or the flags object raises every sampling rate to 1.0."""
        if self.settings.telemetry_sampling_override:
            return True
        return self.current().sampling_override(now or datetime.now(UTC))


def flags_summary(flags: Flags, now: datetime | None = None) -> dict[str, Any]:
    """A printable summary of the flags."""
    now = now or datetime.now(UTC)
    return {
        "sampling_override": flags.sampling_override(now),
        "sampling_override_until": flags.sampling_override_until.isoformat()
        if flags.sampling_override_until
        else None,
        "reason": flags.reason,
    }
