"""The catalog's model refuses what cannot work, and the lint finds what does not exist."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.contract.registry import default_registry
from shared.metrics.catalog import CatalogError, default_catalog, parse_catalog, parse_duration
from shared.metrics.drift import jensen_shannon, psi
from telemetry_cli.metrics.docs import render_markdown
from telemetry_cli.metrics.lint import lint_catalog

BASE = """
defaults: {source: hot, window: 1h, grain: 15m, fire: {n: 3, m: 4}, keep_firing_for: 45m,
           cooldown: 2h, channels: [topic]}
metrics:
  - name: m
    description: d
    owner: o
    unit: percent
    dashboard: LLM Cost
    kind: ratio
    numerator: {table: api_calls_log, where: {status: [error]}}
    denominator: {table: api_calls_log}
    thresholds: {direction: above, warn: 1, critical: 2}
    runbook: llm-errors.md
"""


def test_the_shipped_catalog_is_clean() -> None:
    catalog, problems = lint_catalog(default_registry())
    assert problems == [] and catalog is not None and len(catalog) >= 15


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (("warn: 1, critical: 2", "warn: 3, critical: 2"), "critical must lie beyond warn"),
        (("window: 1h", "window: 50m"), "whole grains"),
        (("window: 1h", "window: 2d"), "whole grains"),
        (("fire: {n: 3, m: 4}", "fire: {n: 5, m: 4}"), "n <= m"),
        (("kind: ratio", "kind: quantile"), "needs measure"),
        (("grain: 15m", "grain: 15 minutes"), "not a duration"),
        (("unit: percent", "unit: percent\n    colour: red"), "colour"),
    ],
)
def test_a_broken_metric_is_named_with_what_is_wrong(change: tuple[str, str], says: str) -> None:
    with pytest.raises(CatalogError, match="metric m") as caught:
        parse_catalog(BASE.replace(*change))
    assert says in str(caught.value)


def test_the_lint_names_unknown_events_fields_and_missing_runbooks(tmp_path: Path) -> None:
    text = (
        BASE.replace("where: {status: [error]}", "where: {colour: [red]}")
        .replace("numerator: {table: api_calls_log,", "numerator: {events: [no.such], ")
        .replace("llm-errors.md", "nowhere.md")
    )
    path = tmp_path / "catalog.yaml"
    path.write_text(text)
    _, problems = lint_catalog(default_registry(), path, root=tmp_path)
    joined = "\n".join(problems)
    assert "event 'no.such' is not in the registry" in joined
    assert "'colour' is neither a column of telemetry_events nor a registry prop" in joined
    assert "runbook docs/runbooks/nowhere.md is missing" in joined


def test_a_prop_of_other_events_is_refused(tmp_path: Path) -> None:
    text = BASE.replace(
        "numerator: {table: api_calls_log, where: {status: [error]}}",
        "numerator: {events: [node.expand], where: {rating: [5]}}",
    )
    (tmp_path / "docs" / "runbooks").mkdir(parents=True)
    (tmp_path / "docs" / "runbooks" / "llm-errors.md").write_text("x")
    path = tmp_path / "catalog.yaml"
    path.write_text(text)
    _, problems = lint_catalog(default_registry(), path, root=tmp_path)
    assert problems == ["m: 'rating' is not a prop of node.expand"]


def test_durations() -> None:
    assert parse_duration("15m").total_seconds() == 900
    assert parse_duration("7d").days == 7
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("1w")


def test_drift_measures() -> None:
    same = {"1": 40.0, "2": 30.0, "3": 20.0, "4": 10.0}
    assert jensen_shannon(same, same) == pytest.approx(0.0)
    assert jensen_shannon({"1": 1.0}, {"2": 1.0}) == pytest.approx(1.0)
    flipped = {"1": 10.0, "2": 20.0, "3": 30.0, "4": 40.0}
    assert 0.1 < jensen_shannon(same, flipped) < 0.2
    assert psi(same, same) == pytest.approx(0.0) and psi(same, flipped) > 0.5


def test_the_docs_page_lists_every_metric_with_its_runbook() -> None:
    page = render_markdown(default_catalog())
    for metric in default_catalog():
        assert f"## {metric.name}" in page and f"runbooks/{metric.runbook}" in page
