"""The capacity model's arithmetic on fixed rates (the real rates are measured by the CLI)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from telemetry_cli.capacity_model import model
from telemetry_cli.capacity_model.model import Assumptions, load_prices, plan

RATES: dict[str, Any] = {
    "measured_at": "2026-11-28T04:00:00+00:00",
    "machine": {"cpu": "test cpu", "cores": 2},
    "rates": {
        "ingest_events_per_cpu_second": 50_000,
        "sink_rows_per_second": 15_000,
        "postgres_rows_per_vcpu_second": 10_000,
        "snapshot_rows_per_second": 150_000,
        "hot_bytes_per_row": 600,
        "wal_bytes_per_row": 900,
        "pubsub_bytes_per_event": 400,
        "parquet_bytes_per_row": 60,
    },
}


def test_prices_are_dated_and_sourced() -> None:
    prices = load_prices()
    assert prices["retrieved"]
    for name in ("cloud_run", "pubsub", "cloud_sql", "gcs", "bigquery", "kms"):
        assert prices[name]["source"].startswith("https://cloud.google.com/"), name


def test_a_plan_adds_up() -> None:
    p = plan(1e8, RATES, load_prices())
    stored = 1e8 * (0.6 * 0.2 + 0.4)
    assert p.sections["ingest"]["events_per_second_mean"] == round(1e8 / (30 * 86400), 1)
    assert p.sections["sink"]["rows_per_second_mean"] == round(stored / (30 * 86400), 1)
    assert p.sections["storage"]["warm_gib"] == round(stored / 30 * 180 * 60 / 1024**3, 1)
    assert p.total == pytest.approx(sum(p.costs.values()))
    data = p.to_json()
    assert data["usd_per_million_events"] == pytest.approx(p.total / 100, abs=0.01)
    assert p.breaks == []


def test_costs_grow_with_volume_and_breaking_points_appear() -> None:
    small, huge = (plan(v, RATES, load_prices()) for v in (1e7, 1e10))
    assert huge.total > small.total * 20
    assert huge.sections["sink"]["instances_peak"] > small.sections["sink"]["instances_peak"]
    assert any("TiB hot" in b for b in huge.breaks) and small.breaks == []
    slow = {**RATES, "rates": {**RATES["rates"], "postgres_rows_per_vcpu_second": 100}}
    assert any("write ceiling" in b for b in plan(1e10, slow, load_prices()).breaks)


def test_sampling_ui_lowers_what_is_stored() -> None:
    everything = plan(1e9, RATES, load_prices(), Assumptions(ui_sample_rate=1.0))
    sampled = plan(1e9, RATES, load_prices(), Assumptions(ui_sample_rate=0.2))
    assert (
        sampled.sections["sink"]["rows_per_second_mean"]
        < everything.sections["sink"]["rows_per_second_mean"]
    )


def test_the_cli_prints_the_plan_from_the_rates_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from telemetry_cli import capacity as command

    path = tmp_path / "rates.json"
    path.write_text(json.dumps(RATES))
    monkeypatch.setattr(command, "RATES_PATH", path)
    monkeypatch.setattr(command, "load_rates", lambda: model.load_rates(path))
    table = CliRunner().invoke(command.capacity, ["--events-per-month", "100000000"])
    assert table.exit_code == 0, table.output
    assert "capacity for 100,000,000 events a month" in table.output
    assert "on test cpu (2 cores)" in table.output
    assert "per million events" in table.output
    md = CliRunner().invoke(command.capacity, ["--format", "markdown"])
    assert md.output.count("\n") > 20 and "10,000,000,000" in md.output
    js = CliRunner().invoke(command.capacity, ["--format", "json", "--events-per-month", "1e7"])
    assert json.loads(js.output)["plans"][0]["events_per_month"] == 1e7
    monkeypatch.setattr(command, "RATES_PATH", tmp_path / "missing.json")
    missing = CliRunner().invoke(command.capacity, [])
    assert missing.exit_code == 1 and "telemetry capacity --measure" in missing.output


def test_a_volume_below_one_event_is_refused_with_a_clear_error() -> None:
    from telemetry_cli import capacity as command

    refused = CliRunner().invoke(command.capacity, ["--events-per-month", "0"])
    assert refused.exit_code == 2 and "--events-per-month" in refused.output
