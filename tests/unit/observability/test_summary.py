"""Periodic summaries: totals logged once per interval, nothing when there was nothing."""

from __future__ import annotations

import logging

import pytest

from shared.observability.summary import PeriodicSummary


def test_totals_are_logged_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="summary-test")
    now = [100.0]
    summary = PeriodicSummary(logging.getLogger("summary-test"), "totals", 10.0, lambda: now[0])
    summary.add({"requests": 1, "accepted": 50}, {"rejected_by_field": {"props.panel": 1}})
    now[0] += 5
    summary.add({"requests": 1, "accepted": 20}, {"rejected_by_field": {"props.panel": 2}})
    assert [r for r in caplog.records if r.getMessage() == "totals"] == []
    now[0] += 5
    summary.add({"requests": 1}, {"rejected_by_field": {}})
    (record,) = [r for r in caplog.records if r.getMessage() == "totals"]
    assert record.requests == 3 and record.accepted == 70
    assert record.rejected_by_field == {"props.panel": 3}
    assert record.interval_s == 10.0
    summary.flush()  # nothing new since: no line
    assert len([r for r in caplog.records if r.getMessage() == "totals"]) == 1
