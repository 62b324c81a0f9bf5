"""A 60 s PostgreSQL outage under load, through `telemetry dev` as a new user runs it.

It starts `telemetry dev` (what `make dev` runs) in a fresh state folder, sends 50-event
beacons to ingest at a steady rate, stops PostgreSQL for ``OUTAGE_S`` seconds in the middle of
the load (``pg_ctl stop``, then a start on the same socket), and keeps a ledger of every event
ingest answered 202 for. After the load it waits for the pipeline to drain, then reconciles
the ledger against the hot tier and the dead-letter hold subscription.

Before the local relay and the 100 delivery attempts this lost most of the load (issue 13:
17,950 accepted, 3,700 stored, 14,250 nowhere). Last line:
``outage: <accepted> accepted, <stored> stored, <dead-lettered> dead-lettered, <missing> missing``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from shared.storage.hot.engine import make_engine  # noqa: E402
from telemetry_cli.generator import EventGenerator  # noqa: E402
from telemetry_cli.stack.postgres import EmbeddedPostgres, default_data_dir  # noqa: E402

TELEMETRY = str(Path(sys.executable).parent / "telemetry")
BEFORE_S, OUTAGE_S, AFTER_S = 10, 60, 20
BEACONS_PER_S = 5
DRAIN_TIMEOUT_S = 300


def start_dev(state: Path) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "PUBSUB_EMULATOR_HOST", "STORAGE_EMULATOR_HOST")
    }
    proc = subprocess.Popen(
        [TELEMETRY, "dev", "--state-dir", str(state)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(state.parent / "dev.stderr").open("wb"),
    )
    path = state / "dev.json"
    deadline = time.monotonic() + 120
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"telemetry dev did not start; see {state.parent / 'dev.stderr'}")
        time.sleep(0.2)
    return proc, json.loads(path.read_text())


class Load:
    """Beacons at a steady rate; the ledger holds every event_id answered 202 and not rejected."""

    def __init__(self, url: str, origin: str) -> None:
        self.url = url
        self.origin = origin
        self.accepted: set[str] = set()
        self.statuses: dict[int, int] = {}
        self.stop = threading.Event()
        self.generator = EventGenerator(seed=int(time.time()))

    def run(self) -> None:
        interval = 1 / BEACONS_PER_S
        next_at = time.monotonic()
        while not self.stop.is_set():
            events = self.generator.events(50)
            body = json.dumps({"context": {"app_version": "1.8.0"}, "events": events}).encode()
            status, answer = self._post(body)
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if status == 202:
                rejected = {r["index"] for r in answer["rejected"]}
                self.accepted.update(
                    e["event_id"] for i, e in enumerate(events) if i not in rejected
                )
            next_at += interval
            self.stop.wait(max(0.0, next_at - time.monotonic()))

    def _post(self, body: bytes) -> tuple[int, Any]:
        request = urllib.request.Request(
            self.url,
            data=body,
            headers={"Content-Type": "text/plain;charset=UTF-8", "Origin": self.origin},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, None
        except OSError:
            return 0, None


def stored_count(engine: Any, ids: list[str]) -> int:
    with engine.connect() as conn:
        total = 0
        for table, column in (("telemetry_events", "event_id"), ("api_calls_log", "call_id")):
            total += int(
                conn.execute(
                    text(
                        f"SELECT count(*) FROM {table} WHERE {column} = ANY(CAST(:ids AS uuid[]))"
                    ),
                    {"ids": ids},
                ).scalar()
                or 0
            )
    return total


def dead_lettered_events() -> int:
    from shared.pubsub.dlq_hold import summarise
    from shared.settings import get_settings, reset_settings

    reset_settings()
    return summarise(get_settings()).events


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="outage-") as tmp:
        state = Path(tmp) / "state"
        state.mkdir()
        proc, info = start_dev(state)
        postgres: EmbeddedPostgres | None = None
        try:
            for key in ("PUBSUB_EMULATOR_HOST", "STORAGE_EMULATOR_HOST", "DATABASE_URL"):
                os.environ[key] = info[key.lower()]
            os.environ["GOOGLE_CLOUD_PROJECT"] = info["project"]
            socket = parse_qs(urlparse(info["database_url"]).query)["unix_sock"][0]
            postgres = EmbeddedPostgres(Path(socket).parent)
            load = Load(info["ingest_url"], info["allowed_origins"][0])
            sender = threading.Thread(target=load.run, daemon=True)
            sender.start()
            print(f"load: {BEACONS_PER_S} beacons/s of 50 events; outage after {BEFORE_S} s")
            time.sleep(BEFORE_S)
            postgres.start()  # attach to the running server, to stop it as pg_ctl does
            postgres.stop()
            print(f"PostgreSQL stopped for {OUTAGE_S} s")
            time.sleep(OUTAGE_S)
            postgres.start()
            print(f"PostgreSQL started again; load goes on for {AFTER_S} s")
            time.sleep(AFTER_S)
            load.stop.set()
            sender.join(15)
            ids = sorted(load.accepted)
            engine = make_engine(info["database_url"], pool_size=1, max_overflow=0)
            started, stored, last_change, last = time.monotonic(), 0, time.monotonic(), -1
            while time.monotonic() - started < DRAIN_TIMEOUT_S:
                stored = stored_count(engine, ids)
                if stored != last:
                    last, last_change = stored, time.monotonic()
                    print(f"drain: {stored} of {len(ids)} stored", flush=True)
                if stored >= len(ids) or time.monotonic() - last_change > 60:
                    break
                time.sleep(2)
            engine.dispose()
            dead = dead_lettered_events()
            print(f"ingest answers: {dict(sorted(load.statuses.items()))}")
            missing = len(ids) - stored - dead
            print(
                f"outage: {len(ids)} accepted, {stored} stored, {dead} dead-lettered, "
                f"{missing} missing"
            )
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
            if postgres is not None:  # the server started here is this script's to stop
                postgres.stop()
            shutil.rmtree(default_data_dir(state), ignore_errors=True)


if __name__ == "__main__":
    main()
