"""Fixtures: the real local services, started once per test session by the stack's own code."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from shared.settings import reset_settings
from shared.storage.hot.engine import make_engine

PROJECT_DIR = Path(__file__).resolve().parents[1]
# Functions import their sibling modules as top-level ones (as in their deployed bundle).
for _function_dir in sorted((PROJECT_DIR / "functions").glob("*/")):
    if (_function_dir / "main.py").exists() and str(_function_dir) not in sys.path:
        sys.path.append(str(_function_dir))

# Tests must not pick up a developer's running stack or production settings by accident.
for _name in ("DATABASE_URL", "PUBSUB_EMULATOR_HOST", "STORAGE_EMULATOR_HOST", "TELEMETRY_ENV"):
    if os.environ.get("TELEMETRY_TEST_USE_ENV") != "1":
        os.environ.pop(_name, None)
os.environ.setdefault("TELEMETRY_TRACING", "off")


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    """Every test reads the environment anew (monkeypatched variables take effect)."""
    reset_settings()
    yield
    reset_settings()


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """PostgreSQL, the Pub/Sub emulator and the GCS emulator, provisioned and migrated.

    Started through the same DevStack code as ``telemetry dev``; a service that cannot start
    fails the tests that need it (never a skip).
    """
    from telemetry_cli.stack.devstack import DevStack, StackOptions

    state = tmp_path_factory.mktemp("stack")
    options = StackOptions.from_environment(state_dir=state, with_functions=False, persistent=False)
    stack = DevStack(options)
    stack.start()
    saved = {k: os.environ.get(k) for k in stack.env()}
    stack.apply_env()
    try:
        yield stack
    finally:
        stack.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def engine(services: object) -> Iterator[Engine]:
    """An engine on the test PostgreSQL (schema migrated)."""
    url = services.database_url  # type: ignore[attr-defined]
    eng = make_engine(url)
    yield eng
    eng.dispose()
