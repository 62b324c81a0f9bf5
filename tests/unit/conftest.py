"""Fixtures of the unit tests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.contract.registry import default_registry
from shared.contract.stored_event import StoredEvent

#: The instant unit tests' stored events were received at.
NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)


def _stored(
    i: int = 0, name: str = "node.expand", props: dict[str, Any] | None = None, **fields: Any
) -> StoredEvent:
    values: dict[str, Any] = {
        "event_id": f"0b6c7b1e-1111-4222-8333-{i:012d}",
        "name": name,
        "version": 1,
        "category": default_registry().get(name, 1).category,
        "event_ts": NOW,
        "received_at": NOW,
        "session_id": "s-1",
        "props": props if props is not None else {"node_id": f"n-{i}"},
        "sample_rate": 1.0,
        "user_key": "ab" * 32,
        "key_id": "k1",
    }
    values.update(fields)
    return StoredEvent(**values)


@pytest.fixture(scope="session")
def make_stored() -> Callable[..., StoredEvent]:
    """``make_stored(i, name=..., props=..., **fields)``: a valid stored-form event."""
    return _stored
