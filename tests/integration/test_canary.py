"""`telemetry canary` against a running `telemetry dev`: replay, land, compare, stay out of metrics.

The deployment replays its own warm tier into its own ingest (a second deployment would only
change the URLs): the canary events land with new ids in their own session, every count and
metric agrees with the source, and the product metrics are the same before and after.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from shared.contract.canary import CANARY_APP_VERSION
from shared.contract.registry import default_registry
from shared.metrics.catalog import default_catalog
from shared.metrics.evaluate import Evaluator, PostgresRunner, grid_for
from shared.storage.hot.engine import make_engine
from telemetry_cli.generator import EventGenerator
from tests.integration.conftest import remove_dev_postgres
from tests.integration.test_dev_cli import CLEAN_ENV, start_dev, wait_for_info

pytestmark = pytest.mark.integration
TELEMETRY = str(Path(sys.executable).parent / "telemetry")


def post(url: str, body: dict[str, Any], origin: str | None = None) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    if origin:
        headers["Origin"] = origin
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers)
    with urllib.request.urlopen(request, timeout=120) as answer:
        return json.loads(answer.read())


def stored(engine: Any, where: str = "true") -> int:
    with engine.connect() as conn:
        return sum(
            int(conn.execute(text(f"SELECT count(*) FROM {t} WHERE {where}")).scalar() or 0)
            for t in ("telemetry_events", "api_calls_log")
        )


def test_the_canary_replays_the_warm_tier_and_finds_no_difference(tmp_path: Path) -> None:
    state = tmp_path / "state"
    proc = start_dev(state, "--snapshot-every", "0", "--anomaly-every", "0", "--no-report")
    try:
        info = wait_for_info(proc, state)
        env = {
            **CLEAN_ENV,
            "DATABASE_URL": info["database_url"],
            "PUBSUB_EMULATOR_HOST": info["pubsub_emulator_host"],
            "STORAGE_EMULATOR_HOST": info["storage_emulator_host"],
            "GOOGLE_CLOUD_PROJECT": info["project"],
            "TELEMETRY_BUCKET": info["bucket"],
        }
        engine = make_engine(info["database_url"], pool_size=1, max_overflow=0)
        generator = EventGenerator(seed=18)
        sent = 0
        for envelope in generator.envelopes(sessions=6):
            answer = post(info["ingest_url"], envelope, info["allowed_origins"][0])
            sent += answer["accepted"]
        deadline = time.monotonic() + 60
        while stored(engine) < sent and time.monotonic() < deadline:
            time.sleep(0.5)
        assert stored(engine) == sent
        post(info["snapshot_url"], {})

        evaluator = Evaluator(PostgresRunner(engine), default_registry())
        at = datetime.now(UTC)

        def metrics_now() -> dict[str, Any]:
            """Every hot-tier product metric at one fixed time."""
            return {
                m.name: [(o.value, o.n) for o in evaluator.evaluate(m, grid_for(m, at, at))]
                for m in default_catalog()
                if m.source == "hot" and not m.probe
            }

        before = metrics_now()
        count = min(sent, 80)
        done = subprocess.run(
            [TELEMETRY, "canary", "--target", info["ingest_url"], "--count", str(count)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        print(done.stdout)  # the comparison, shown when the test fails
        assert done.returncode == 0, done.stdout + done.stderr
        last = done.stdout.strip().splitlines()[-1]
        assert last.endswith(f"{count} sent, {count} accepted, {count} stored, 0 differences")
        assert "metric llm_error_rate" in done.stdout and "count  llm.call" in done.stdout
        canary_rows = stored(engine, f"app_version = '{CANARY_APP_VERSION}'")
        assert canary_rows == count and stored(engine) == sent + count
        with engine.connect() as conn:
            sessions = conn.execute(
                text(
                    "SELECT DISTINCT session_id FROM telemetry_events WHERE app_version = 'canary'"
                )
            ).scalars()
            assert all(s.startswith("canary-") for s in sessions)
        # Canary traffic stays out of the product metrics.
        assert metrics_now() == before
        engine.dispose()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        remove_dev_postgres(state)
