"""Ingest stores its own counts: the rejected-event rate by reason is a metric like the others."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from shared.contract.registry import default_registry
from shared.contract.stored_event import StoredEvent
from shared.metrics.catalog import default_catalog
from shared.metrics.evaluate import Evaluator, PostgresRunner, breakdown, grid_for
from shared.pubsub.message import event_dicts
from shared.storage.hot.writer import write_events
from tests.integration.test_ingest_server import beacon, event, send
from tests.integration.tiers import Warm

pytestmark = pytest.mark.integration


def sum_of(events: list[dict[str, Any]], key: str) -> int:
    return sum(e["props"][key] for e in events if e["props"]["reason"] == "all")


def test_ingest_publishes_its_counts_and_the_catalog_reads_them(
    services: Any, function_server: Any, topic_tap: Any, warm: Warm, tmp_path: Path
) -> None:
    env = {**services.env(), "TELEMETRY_LOG_SUMMARY_S": "0.5"}
    headers = {"Content-Type": "application/json"}
    with (
        topic_tap(services.options.project) as tap,
        function_server("ingest", env, tmp_path) as url,
    ):
        good = [event(i, event_id=str(uuid.uuid4())) for i in range(6)]
        bad = [
            event(90, event_id=str(uuid.uuid4()), props={"node_id": "n", "depth": -1}),
            event(91, event_id=str(uuid.uuid4()), props={"node_id": "n", "depth": -2}),
            event(92, event_id=str(uuid.uuid4()), ts="yesterday"),
        ]
        status, _, answer = send(f"{url}/v1/events", beacon(*good, *bad), headers)
        assert status == 202 and answer["accepted"] == 6 and len(answer["rejected"]) == 3
        time.sleep(0.7)  # the next request, counted too, finds the interval over and flushes it
        send(f"{url}/v1/events", beacon(event(7, event_id=str(uuid.uuid4()))), headers)
        # One interval or two (the first request alone when its cold start outlasted the
        # interval): either way the totals add up to both requests.
        counted: list[dict[str, Any]] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and sum_of(counted, "received") < 10:
            counted += [
                e
                for m in tap.pull_all(expected=1, timeout=2)
                if m.attributes.get("source") == "pipeline"
                for e in event_dicts(m.data)
            ]
    totals = {k: sum_of(counted, k) for k in ("received", "accepted", "sampled_out", "rejected")}
    assert totals == {"received": 10, "accepted": 7, "sampled_out": 0, "rejected": 3}
    rows = {e["props"]["reason"]: e["props"] for e in counted}
    assert sum(e["props"]["rejected"] for e in counted if e["props"]["reason"] != "all") == 3
    assert all(e["name"] == "pipeline.intake" and e["category"] == "pipeline" for e in counted)

    # Stored as the sink stores them, they are what the catalog's metric reads.
    stored = [msgspec.convert(e, StoredEvent) for e in counted]
    now = datetime.now(UTC)
    filler = [
        msgspec.structs.replace(
            stored[0],
            event_id=str(uuid.uuid4()),
            event_ts=now - timedelta(minutes=k),
            props={**stored[0].props, "rejected": 0, "received": 100, "accepted": 100},
        )
        for k in range(1, 40)
    ]
    assert write_events(warm.engine, stored + filler).inserted == len(stored) + 39
    metric = default_catalog().get("rejected_event_rate")
    evaluator = Evaluator(PostgresRunner(warm.engine), default_registry())
    at = grid_for(metric, now, now + metric.grain_td)
    value = evaluator.evaluate(metric, at)[-1]
    assert value.status == "ok" and value.value == pytest.approx(100 * 3 / (10 + 3900))
    slices = breakdown(
        evaluator, metric, "reason", now - timedelta(hours=1), now + timedelta(minutes=1)
    )
    assert {s.group for s in slices} == {r for r in rows if r != "all"}
    assert sum(s.value or 0 for s in slices) == pytest.approx(100 * 3 / (10 + 3900))
