"""Each function as it ships: its bundle, installed alone, started, and answering for real.

``scripts/build_bundles.py`` builds every bundle; each bundle's ``requirements.txt`` is
installed into a clean virtual environment of its own (as Cloud Run's build does), with no
project code on the path; functions-framework from that environment serves the bundle's
``main.py``. Each function then answers a real request against the local services:

* ingest accepts a beacon (published to the Pub/Sub emulator);
* the sink stores a push body in PostgreSQL;
* snapshot, lifecycle and anomaly answer a status action (a dry run, or the alert states).

A bundle that misses a package it imports fails here: its server does not start, or its
answer is a 500.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
import urllib.error
import urllib.request
import uuid
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from shared.pubsub import resources as names
from telemetry_cli.stack.functions import function_process
from telemetry_cli.stack.process import ManagedProcess, free_port, port_answers

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = ("ingest", "sink", "snapshot", "lifecycle", "anomaly")
#: Never in the ingest or sink bundles: the warm tier's engines and the CLI's report tools.
HEAVY = ("duckdb", "pyarrow", "plotly", "grafana-foundation-sdk")


@pytest.fixture(scope="module")
def bundles() -> Iterator[dict[str, Path]]:
    """``{name: unpacked bundle folder}``, each with its own ``.venv`` (about 1 GB in all,
    removed after the module; the servers' logs stay with the session's)."""
    with tempfile.TemporaryDirectory(prefix="telemetry-bundles-") as work:
        yield _install_bundles(Path(work))


def _install_bundles(work: Path) -> dict[str, Path]:
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import build_bundles
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    built = build_bundles.build(ROOT, work / "zips")
    folders = {}
    for name in FUNCTIONS:
        folder = work / name
        with zipfile.ZipFile(built[name]["path"]) as archive:
            archive.extractall(folder)
        requirements = ["-r", str(folder / "requirements.txt")]
        build_bundles.install_environment(folder / ".venv", requirements)
        folders[name] = folder
    return folders


@pytest.fixture(scope="module")
def serve(
    services: Any, bundles: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[str], str]]:
    """Start a bundle's function under its own functions-framework; its base URL."""
    logs = tmp_path_factory.mktemp("bundle-logs")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTHON", "VIRTUAL_ENV", "COV_", "COVERAGE"))
    }
    env.update(services.env())
    started: list[ManagedProcess] = []

    def start(name: str) -> str:
        folder = bundles[name]
        port = free_port()
        launcher = folder / ".venv" / "bin" / "functions-framework"
        proc = function_process(name, folder.parent, port, logs / f"{name}.log", env, launcher)
        proc.start()
        started.append(proc)
        proc.wait_ready(lambda: port_answers(port), 60)
        return f"http://127.0.0.1:{port}"

    yield start
    for proc in started:
        proc.stop()


def _post(url: str, body: Any, content_type: str = "application/json") -> tuple[int, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            status, raw = answer.status, answer.read()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read().decode(errors="replace")
    is_json = answer.headers.get_content_type() == "application/json"
    return status, json.loads(raw) if is_json else raw.decode(errors="replace")


def _installed(folder: Path) -> set[str]:
    lines = (folder / "requirements.txt").read_text(encoding="utf-8").splitlines()
    return {line.split("==")[0].strip().lower() for line in lines if "==" in line}


def test_ingest_and_sink_carry_no_warm_tier_or_report_packages(bundles: dict[str, Path]) -> None:
    for name in ("ingest", "sink"):
        assert not _installed(bundles[name]) & set(HEAVY), name
    assert len(_installed(bundles["ingest"])) <= 45


def test_the_ingest_bundle_accepts_a_beacon(serve: Callable[[str], str]) -> None:
    from telemetry_cli.generator import EventGenerator

    url = serve("ingest")
    beacon = next(EventGenerator(seed=26).envelopes(1, batch_size=1))
    status, answer = _post(f"{url}/v1/events", beacon, "text/plain;charset=UTF-8")
    assert status == 202, answer
    assert answer["accepted"] == 1


def test_the_sink_bundle_stores_a_push_body(
    serve: Callable[[str], str], engine: Engine, make_events: Callable[..., list[Any]]
) -> None:
    from shared.pubsub.message import encode_batches

    url = serve("sink")
    events = make_events(3)
    ((data, _),) = list(encode_batches(events))
    push = {
        "subscription": f"projects/p/subscriptions/{names.SUBSCRIPTION_SINK}",
        "message": {
            "data": base64.b64encode(data).decode(),
            "messageId": uuid.uuid4().hex,
            "attributes": {"event_count": "3"},
        },
    }
    status, answer = _post(f"{url}/projects/p/topics/{names.TOPIC_EVENTS}", push)
    assert status == 200, answer
    with engine.connect() as conn:
        stored = conn.execute(
            text("SELECT count(*) FROM telemetry_events WHERE event_id = ANY(CAST(:i AS uuid[]))"),
            {"i": [e.event_id for e in events]},
        ).scalar()
    assert stored == 3


@pytest.mark.parametrize(
    ("name", "action"),
    [
        ("snapshot", {"dry_run": True}),
        ("lifecycle", {"action": "retention", "dry_run": True}),
        ("anomaly", {"action": "status"}),
    ],
)
def test_the_scheduled_bundles_answer_a_status_action(
    serve: Callable[[str], str], name: str, action: dict[str, Any]
) -> None:
    status, answer = _post(serve(name), action)
    assert status == 200, answer
    assert isinstance(answer, dict) and answer
