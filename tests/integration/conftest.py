"""Fixtures shared by the integration tests."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.contract.intake import Intake
from shared.contract.stored_event import StoredEvent
from shared.contract.validation import EventValidator
from shared.policy.privacy import Pseudonymiser
from shared.policy.sampling import SamplingPolicy
from shared.settings import DEV_PSEUDONYM_KEY, parse_keyring
from tests.integration.tiers import warm  # noqa: F401 - the fixture, for every module here


def remove_dev_postgres(*states: Path) -> None:
    """Remove the PostgreSQL data that `telemetry dev` keeps under /tmp for each state folder
    (a persistent stack's, named per user and state folder: see ``default_data_dir``)."""
    from telemetry_cli.stack.postgres import default_data_dir

    for state in states:
        shutil.rmtree(default_data_dir(state), ignore_errors=True)


@pytest.fixture
def dev_state(tmp_path: Path) -> Iterator[Path]:
    """A state folder for `telemetry dev` runs; their PostgreSQL data is removed after."""
    state = tmp_path / "state"
    yield state
    remove_dev_postgres(state)


@pytest.fixture(scope="module")
def sink_url(services, tmp_path_factory: pytest.TempPathFactory, function_server) -> Iterator[str]:
    """A sink server, fed from the sink subscription by the relay, as under `telemetry dev`."""
    from telemetry_cli.stack.relay import sink_relay

    project = services.options.project
    with function_server("sink", services.env(), tmp_path_factory.mktemp("sink-logs")) as url:
        relay = sink_relay(project, url).start()
        try:
            yield url
        finally:
            relay.stop()


def _make_events(count: int, *, llm: bool = False, tag: str | None = None) -> list[StoredEvent]:
    now = datetime.now(UTC)
    intake = Intake(
        EventValidator(), SamplingPolicy({}), Pseudonymiser(parse_keyring(DEV_PSEUDONYM_KEY))
    )
    session = f"s-{tag or uuid.uuid4().hex[:8]}"
    raw = []
    for i in range(count):
        event: dict[str, Any] = {
            "event_id": str(uuid.uuid4()),
            "name": "node.expand",
            "ts": (now - timedelta(seconds=5)).isoformat(),
            "props": {"node_id": f"n-{i}", "depth": 1},
        }
        if llm and i == 0:
            event.update(
                name="llm.call",
                props={
                    "provider": "anthropic",
                    "model": "claude-sonnet-4",
                    "operation": "bias_prefilter",
                    "latency_ms": 812.5,
                    "status": "ok",
                    "input_tokens": 1200,
                    "output_tokens": 150,
                    "cached_input_tokens": 800,
                    "cost_usd": 0.00609,
                    "price_version": "2026-11-01",
                },
            )
        raw.append(event)
    result = intake.process_events(raw, {"session_id": session, "user_id": "u-sink"}, now)
    assert len(result.accepted) == count, result.rejected
    return result.accepted


@pytest.fixture(scope="session")
def make_events() -> Callable[..., list[StoredEvent]]:
    """``make_events(count, llm=False, tag=None)``: stored events of one new session."""
    return _make_events


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright (never skipped: missing is a failure)."""
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    assert executable, "Chromium is missing: `make setup` installs Debian's chromium (as root)"
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=executable,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield instance
        instance.close()
