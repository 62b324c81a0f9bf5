"""Fixtures: the real local services, started once per test session by the stack's own code."""

from __future__ import annotations

import contextlib
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings as hypothesis_settings
from hypothesis.database import DirectoryBasedExampleDatabase
from sqlalchemy import Engine

from shared.settings import reset_settings
from shared.storage.hot.engine import make_engine

PROJECT_DIR = Path(__file__).resolve().parents[1]

# Hypothesis' example database lives in the repository: a failing example found once (by a
# property test or by schemathesis) is committed and replayed first on every later run. Hypothesis'
# own CI profile (chosen when `CI` is set) derandomizes and so refuses any database; this profile
# keeps the corpus there too, so CI replays what a developer's run found.
hypothesis_settings.register_profile(
    "repository",
    derandomize=False,
    database=DirectoryBasedExampleDatabase(str(PROJECT_DIR / "tests" / "hypothesis-corpus")),
)
hypothesis_settings.load_profile("repository")
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


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """``values`` in ``os.environ`` for a block, then what was there before."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    reset_settings()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        reset_settings()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """This worker's PostgreSQL, migrated, and ``DATABASE_URL`` naming it. Started alone: a
    test that needs only PostgreSQL does not wait for the emulators (:func:`services`).

    Its folder is a private one in the temp folder, opened for traversal (as root, pgserver
    runs the server as its own user), as ``telemetry dev`` makes it."""
    import shutil
    import tempfile

    from shared.storage.hot.engine import dispose_engine, run_migrations
    from telemetry_cli.stack.postgres import EmbeddedPostgres

    root = Path(tempfile.mkdtemp(prefix="telemetry-stack-"))
    root.chmod(0o755)
    server = EmbeddedPostgres(root / "pg")
    try:
        server.start()
        engine = make_engine(server.url)
        try:
            run_migrations(engine)
        finally:
            engine.dispose()
        with _environment({"DATABASE_URL": server.url}):
            yield server.url
            dispose_engine()
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory, postgres_url: str) -> Iterator[object]:
    """PostgreSQL (:func:`postgres_url`), the Pub/Sub emulator and the GCS emulator,
    provisioned and migrated, started for the first test that needs them.

    Started through the same DevStack code as ``telemetry dev``; a service that cannot start
    fails the tests that need it (never a skip). Each pytest-xdist worker has its own.
    """
    from telemetry_cli.stack.devstack import DevStack, StackOptions

    state = tmp_path_factory.mktemp("stack")
    options = StackOptions.from_environment(
        state_dir=state, with_functions=False, persistent=False, database_url=postgres_url
    )
    stack = DevStack(options)
    stack.start()
    try:
        with _environment(stack.env()):
            stack.apply_env()
            yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def engine(postgres_url: str) -> Iterator[Engine]:
    """An engine on the test PostgreSQL (schema migrated)."""
    eng = make_engine(postgres_url)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def project_dir() -> Path:
    """The checkout's root folder."""
    return PROJECT_DIR


@pytest.fixture(scope="session")
def function_server() -> Callable[..., contextlib.AbstractContextManager[str]]:
    """``function_server(name, env, log_dir)``: a function under functions-framework, its URL."""
    from telemetry_cli.stack.functions import running_function

    return running_function


class Tap:
    """A fresh pull subscription on a topic, to see what was published there."""

    def __init__(self, subscriber: Any, path: str) -> None:
        self.subscriber = subscriber
        self.path = path

    def pull_all(self, expected: int = 1, timeout: float = 15.0) -> list[Any]:
        """Pull and ack until ``expected`` messages arrived or time is up."""
        got: list[Any] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(got) < expected:
            response = self.subscriber.pull(subscription=self.path, max_messages=100, timeout=5)
            if response.received_messages:
                got.extend(m.message for m in response.received_messages)
                self._ack(response.received_messages)
        return got

    def drain(self, seconds: float = 1.5) -> list[Any]:
        """Whatever else arrives within ``seconds`` (to prove nothing more was published)."""
        got: list[Any] = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            response = self.subscriber.pull(subscription=self.path, max_messages=100, timeout=2)
            got.extend(m.message for m in response.received_messages)
            if response.received_messages:
                self._ack(response.received_messages)
            else:
                time.sleep(0.2)
        return got

    def _ack(self, received: Any) -> None:
        self.subscriber.acknowledge(subscription=self.path, ack_ids=[m.ack_id for m in received])


@pytest.fixture(scope="session")
def topic_tap() -> Callable[..., contextlib.AbstractContextManager[Tap]]:
    """``topic_tap(project, topic=events)``: a :class:`Tap`, its subscription deleted after."""
    from google.cloud import pubsub_v1

    from shared.pubsub import resources

    @contextlib.contextmanager
    def tap(project: str, topic: str = resources.TOPIC_EVENTS) -> Iterator[Tap]:
        subscriber = pubsub_v1.SubscriberClient()
        path = subscriber.subscription_path(project, f"tap-{uuid.uuid4().hex[:10]}")
        subscriber.create_subscription(
            name=path, topic=f"projects/{project}/topics/{topic}", ack_deadline_seconds=60
        )
        try:
            yield Tap(subscriber, path)
        finally:
            try:
                subscriber.delete_subscription(subscription=path)
            finally:
                subscriber.close()

    return tap


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The suite's own logs hold no canary: every file the session wrote under its temporary
    folder (the functions', the CLI's and the stacks' logs) is read by ``telemetry logs scan``'s
    scanner for the values of ``tests/canaries.tsv``; any finding fails the run."""
    from telemetry_cli.logscan import read_canaries, scan

    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is None or getattr(session.config, "workerinput", None) is not None:
        return
    report = scan(factory.getbasetemp(), read_canaries(PROJECT_DIR / "tests" / "canaries.tsv"))
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    for finding in report.findings:
        if reporter is not None:
            reporter.write_line(f"PII in a log: {finding}", red=True)
    if reporter is not None:
        reporter.write_line(
            f"log scan: {report.files} files, {report.lines} lines, "
            f"{len(report.findings)} canary finding(s)"
        )
    if report.findings:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
