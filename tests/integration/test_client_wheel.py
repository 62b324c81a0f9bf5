"""The Python client as a backend team gets it: the ``telemetry-client`` wheel, installed alone.

``scripts/build_client.py`` builds the wheel; it is installed into a clean virtual environment
(the lock's versions as constraints) and run from a folder with no project code on the path:

* its installed closure is small, and holds none of the pipeline's server-side packages;
* a ``track_api_call`` travels through a local ingest, Pub/Sub and the sink into PostgreSQL;
* without an ingest URL, and without the ``[pubsub]`` extra, it says what to install;
* with the ``[pubsub]`` extra it publishes straight to the Pub/Sub emulator.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
#: Server-side packages a backend app must never get from ``pip install telemetry-client``.
FORBIDDEN = ("duckdb", "pyarrow", "sqlalchemy", "grpc", "flask", "functions-framework")
MAX_CLOSURE = 8


def _scripts() -> Any:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import build_bundles
        import build_client
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    return build_bundles, build_client


@pytest.fixture(scope="module")
def wheel_env() -> Iterator[Callable[[str], Path]]:
    """``install(target)``: a fresh environment with ``target`` (the wheel, or the wheel with
    an extra) installed; its python."""
    build_bundles, build_client = _scripts()
    with tempfile.TemporaryDirectory(prefix="telemetry-client-wheel-") as tmp:
        work = Path(tmp)
        wheel = build_client.build(work / "dist")
        constraints = work / "constraints.txt"
        constraints.write_text(build_bundles.requirements_txt(ROOT), encoding="utf-8")

        def install(extra: str = "") -> Path:
            folder = work / f"venv{extra or '-core'}"
            return build_bundles.install_environment(folder, [f"{wheel}{extra}"], constraints)

        yield install


def _run(python: Path, script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in the client's environment, from a folder holding no project code."""
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "COV"))
    }
    with tempfile.TemporaryDirectory() as elsewhere:
        return subprocess.run(
            [str(python), "-c", textwrap.dedent(script)],
            cwd=elsewhere,
            env={**clean, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )


@pytest.fixture(scope="module")
def core(wheel_env: Callable[[str], Path]) -> Path:
    return wheel_env("")


def test_the_wheel_installs_alone_with_a_small_closure(core: Path) -> None:
    done = _run(
        core,
        """
        import json
        from importlib import metadata
        names = sorted(d.metadata["Name"].lower() for d in metadata.distributions())
        meta = metadata.metadata("telemetry-client")
        print(json.dumps({"names": names, "python": meta["Requires-Python"]}))
        """,
        {},
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    names = [n for n in found["names"] if n not in ("pip", "setuptools")]
    assert len(names) <= MAX_CLOSURE, names
    assert "telemetry-client" in names
    assert not [n for n in names if n.startswith(FORBIDDEN) or n.startswith("google-cloud-")]
    assert found["python"] == ">=3.11"  # every maintained Python, no upper cap


def test_a_tracked_call_reaches_postgresql_through_a_local_ingest(
    core: Path,
    services: Any,
    sink_url: str,
    function_server: Callable[..., Any],
    engine: Engine,
    tmp_path: Path,
) -> None:
    conversation = f"c-wheel-{uuid.uuid4().hex[:8]}"
    script = f"""
        import telemetry_client as tc

        @tc.track_api_call(provider="openai", model="gpt-4o-mini", operation="wheel_check")
        def call_llm():
            return {{"usage": {{"prompt_tokens": 120, "completion_tokens": 30}}}}

        with tc.call_context(conversation_id="{conversation}", user_id="u-wheel"):
            call_llm()
        assert tc.flush(20), tc.get_client().stats
        assert tc.get_client().stats.sent == 1, tc.get_client().stats
    """
    with function_server("ingest", services.env(), tmp_path) as ingest_url:
        done = _run(
            core,
            script,
            {"TELEMETRY_INGEST_URL": f"{ingest_url}/v1/events", "TELEMETRY_CLIENT_DELAY_S": "0.05"},
        )
    assert done.returncode == 0, done.stderr
    row = _wait_for_call(engine, conversation)
    assert (row["provider"], row["model"], row["operation"]) == (
        "openai",
        "gpt-4o-mini",
        "wheel_check",
    )
    assert (row["input_tokens"], row["output_tokens"]) == (120, 30)
    assert row["cost_usd"] is not None and row["user_key"] and len(row["user_key"]) == 64


def test_without_an_ingest_url_or_the_pubsub_extra_it_says_what_to_install(core: Path) -> None:
    done = _run(
        core,
        "import telemetry_client as tc; tc.configure()",
        {"TELEMETRY_INGEST_URL": ""},
    )
    assert done.returncode != 0
    assert "pip install 'telemetry-client[pubsub]'" in done.stderr
    assert "TELEMETRY_INGEST_URL" in done.stderr


def test_with_the_pubsub_extra_it_publishes_straight_to_the_topic(
    wheel_env: Callable[[str], Path], services: Any, sink_url: str, engine: Engine
) -> None:
    python = wheel_env("[pubsub]")
    conversation = f"c-wheel-ps-{uuid.uuid4().hex[:8]}"
    done = _run(
        python,
        f"""
        import telemetry_client as tc

        @tc.track_api_call(provider="anthropic", model="claude-sonnet-4", operation="wheel_ps")
        def call_llm():
            return {{"usage": {{"input_tokens": 50, "output_tokens": 5}}}}

        with tc.call_context(conversation_id="{conversation}"):
            call_llm()
        assert tc.flush(20), tc.get_client().stats
        """,
        {**services.env(), "TELEMETRY_INGEST_URL": ""},
    )
    assert done.returncode == 0, done.stderr
    row = _wait_for_call(engine, conversation)
    assert (row["operation"], row["input_tokens"], row["output_tokens"]) == ("wheel_ps", 50, 5)


def _wait_for_call(engine: Engine, conversation: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        with engine.connect() as conn:
            rows = (
                conn.execute(
                    text("SELECT * FROM api_calls_log WHERE conversation_id = :c"),
                    {"c": conversation},
                )
                .mappings()
                .all()
            )
        if rows or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert len(rows) == 1, rows
    return rows[0]


def test_with_the_archive_extra_it_writes_the_cold_tier(
    wheel_env: Callable[[str], Path], services: Any
) -> None:
    python = wheel_env("[archive]")
    conversation = f"c-wheel-ar-{uuid.uuid4().hex[:8]}"
    done = _run(
        python,
        f"""
        import json
        import telemetry_client as tc

        first = tc.archive("{conversation}", {{"transcript.txt": "hello", "audio.raw": b"\\x00"}})
        again = tc.archive("{conversation}", {{"transcript.txt": "hello"}})
        print(json.dumps([sorted(first.written), sorted(again.deduplicated)]))
        """,
        services.env(),
    )
    assert done.returncode == 0, done.stderr
    written, deduplicated = json.loads(done.stdout.splitlines()[-1])
    assert written == ["audio.raw", "transcript.txt"]
    assert deduplicated == ["transcript.txt"]
