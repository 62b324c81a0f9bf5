"""Helpers for integration tests: real function servers and Pub/Sub subscribers."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from google.cloud import pubsub_v1

from shared.pubsub import resources as names
from telemetry_cli.stack.functions import function_process, wait_function
from telemetry_cli.stack.process import free_port

PROJECT_DIR = Path(__file__).resolve().parents[1]


@contextmanager
def function_server(
    name: str, env: Mapping[str, str], log_dir: Path, port: int | None = None
) -> Iterator[str]:
    """Run ``functions/<name>`` under functions-framework; yields its base URL."""
    port = port or free_port()
    proc = function_process(
        name, PROJECT_DIR / "functions", port, log_dir / f"{name}-{port}.log", {**os.environ, **env}
    )
    proc.start()
    try:
        wait_function(proc, port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stop()


@contextmanager
def topic_tap(
    project: str, topic: str = names.TOPIC_EVENTS
) -> Iterator[pubsub_v1.SubscriberClient]:
    """A fresh pull subscription on ``topic``; yields (client, path) and deletes it after."""
    subscriber = pubsub_v1.SubscriberClient()
    path = subscriber.subscription_path(project, f"tap-{uuid.uuid4().hex[:10]}")
    subscriber.create_subscription(
        name=path, topic=f"projects/{project}/topics/{topic}", ack_deadline_seconds=60
    )
    subscriber.tap_path = path  # type: ignore[attr-defined]
    try:
        yield subscriber
    finally:
        try:
            subscriber.delete_subscription(subscription=path)
        finally:
            subscriber.close()


def pull_all(subscriber: pubsub_v1.SubscriberClient, expected: int, timeout: float = 15.0) -> list:
    """Pull and ack until ``expected`` messages arrived (or time is up); then drain a moment more."""
    path = subscriber.tap_path  # type: ignore[attr-defined]
    got: list = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(got) < expected:
        response = subscriber.pull(subscription=path, max_messages=100, timeout=5)
        if response.received_messages:
            got.extend(m.message for m in response.received_messages)
            subscriber.acknowledge(
                subscription=path, ack_ids=[m.ack_id for m in response.received_messages]
            )
    return got


def drain(subscriber: pubsub_v1.SubscriberClient, seconds: float = 1.5) -> list:
    """Whatever else arrives within ``seconds`` (to prove nothing more was published)."""
    path = subscriber.tap_path  # type: ignore[attr-defined]
    got: list = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        response = subscriber.pull(subscription=path, max_messages=100, timeout=2)
        got.extend(m.message for m in response.received_messages)
        if response.received_messages:
            subscriber.acknowledge(
                subscription=path, ack_ids=[m.ack_id for m in response.received_messages]
            )
        else:
            time.sleep(0.2)
    return got


def load_function_main(name: str):  # type: ignore[no-untyped-def]
    """Import ``functions/<name>/main.py`` under the unique module name ``<name>_main``."""
    import importlib.util
    import sys

    module_name = f"{name}_main"
    if module_name in sys.modules:
        return sys.modules[module_name]
    path = PROJECT_DIR / "functions" / name / "main.py"
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module
