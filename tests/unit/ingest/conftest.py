"""Fixtures of the ingest handler's unit tests: a faked publisher, request and beacon builders."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from ingest_http import IngestHandler

from shared.contract.intake import Intake
from shared.contract.stored_event import StoredEvent
from shared.contract.validation import EventValidator
from shared.errors import ServiceUnavailable
from shared.http import Answer
from shared.policy.flags import Flags, RuntimeFlags
from shared.policy.privacy import Pseudonymiser
from shared.policy.sampling import SamplingPolicy
from shared.settings import load_settings

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
ORIGIN = load_settings().allowed_origins[0]
KEY = ("k1", "test-pseudonym-key-long")


class FakePublisher:
    def __init__(self, fail: bool = False) -> None:
        self.batches: list[tuple[list[StoredEvent], str, Any]] = []
        self.fail = fail

    def publish(self, events: list[StoredEvent], source: str, extra: Any = None) -> int:
        if self.fail:
            raise ServiceUnavailable("Pub/Sub did not confirm the batch within 5.0 s", "pubsub")
        self.batches.append((events, source, extra))
        return 1

    @property
    def events(self) -> list[StoredEvent]:
        return [e for batch in self.batches for e in batch[0]]


def make_handler(
    publisher: FakePublisher | None = None,
    rates: dict[str, float] | None = None,
    override_until: datetime | None = None,
    monkeypatch: pytest.MonkeyPatch | None = None,
    **env: str,
) -> IngestHandler:
    settings = load_settings()
    if env:
        settings = msgspec.structs.replace(settings, **env)
    flags = RuntimeFlags(settings, StaticFlags(Flags(override_until)))
    flags.refresh()
    flags._fetched_at = float("inf")  # no background refresh in unit tests
    intake = Intake(EventValidator(), SamplingPolicy(rates or {}), Pseudonymiser([KEY]))
    return IngestHandler(settings, intake, publisher or FakePublisher(), flags, clock=lambda: NOW)


def event(index: int = 0, **overrides: Any) -> dict[str, Any]:
    body = {
        "event_id": f"0b6c7b1e-1111-4222-8333-{index:012d}",
        "name": "detail_panel.view",
        "ts": "2026-11-24T11:59:00.123Z",
        "props": {"node_id": "n-17", "panel": "bias", "duration_ms": 840},
    }
    body.update(overrides)
    return body


def envelope(*events: dict[str, Any], **context: Any) -> dict[str, Any]:
    ctx = {"session_id": "s-1", "user_id": "u-42", "app_version": "1.8.0", **context}
    return {"context": ctx, "events": list(events)}


def post(
    handler: IngestHandler,
    body: Any,
    content_type: str = "application/json",
    origin: str | None = ORIGIN,
    path: str = "/v1/events",
    method: str = "POST",
    **headers: str,
) -> Answer:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    all_headers = {"Content-Type": content_type, "Content-Length": str(len(raw)), **headers}
    if origin:
        all_headers["Origin"] = origin
    return handler.handle(method, path, all_headers, io.BytesIO(raw))


class StaticFlags:
    """A flag store that always holds the same flags."""

    def __init__(self, flags: Flags) -> None:
        self.data = flags.dump()

    def read(self) -> bytes | None:
        return self.data

    def write(self, data: bytes) -> None:
        self.data = data


@pytest.fixture(scope="session")
def make_publisher() -> type[FakePublisher]:
    return FakePublisher


@pytest.fixture(scope="session", name="make_handler")
def make_handler_fixture() -> Callable[..., IngestHandler]:
    return make_handler


@pytest.fixture(scope="session", name="event")
def event_fixture() -> Callable[..., dict[str, Any]]:
    return event


@pytest.fixture(scope="session", name="envelope")
def envelope_fixture() -> Callable[..., dict[str, Any]]:
    return envelope


@pytest.fixture(scope="session", name="post")
def post_fixture() -> Callable[..., Answer]:
    return post


@pytest.fixture(scope="session")
def origin() -> str:
    return ORIGIN


@pytest.fixture(scope="session")
def pseudonym_key() -> tuple[str, str]:
    return KEY
