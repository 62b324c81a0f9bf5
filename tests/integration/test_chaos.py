"""The short chaos run of `make test`: every fault once, then the ledger reconciled.

`make chaos` runs the same command with 100,000 events and a 60 s PostgreSQL outage. Here it
runs in a subprocess (it starts a stack of its own and points its environment at it), with a
fixed seed so a failure replays.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
TELEMETRY = str(Path(sys.executable).parent / "telemetry")
SEED = 20261128
LAST_LINE = re.compile(
    r"^chaos: (\d+) accepted, (\d+) stored, (\d+) lost, (\d+) duplicates, "
    r"(\d+) dead-lettered, warm (\d+) of (\d+)$"
)


def test_the_short_chaos_run_loses_and_doubles_nothing() -> None:
    done = subprocess.run(
        [
            TELEMETRY,
            "chaos",
            "--events",
            "2000",
            "--seed",
            str(SEED),
            "--postgres-outage-s",
            "5",
            "--pubsub-down-s",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    out = done.stdout.strip().splitlines()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    match = LAST_LINE.match(out[-1])
    assert match, out[-1]
    accepted, stored, lost, dup, dead, warm, of = map(int, match.groups())
    erased = int(re.search(r"erased person: (\d+) events accepted, 0 found", done.stdout)[1])
    assert accepted == 2000 and erased > 0
    assert (lost, dup, dead) == (0, 0, 0)
    assert stored == accepted - erased and warm == of == stored
    log = done.stdout
    for fault in ("sink_kill", "postgres_outage", "pubsub_restart", "snapshot_kill", "erasure"):
        assert f" {fault} " in log, fault
    assert "with a range pending" in log
    # A poison message delivered three times is dead-lettered three times (copies).
    assert "dead letters: 3 messages (message body is not JSON: 3); " in log
    assert f"seed {SEED}" in log and "problem:" not in log
