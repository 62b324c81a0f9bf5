"""The catalog replayed over nine days of generated history in the warm and hot tiers: planted
incidents fire exactly once and resolve exactly once, with their runbook; normal traffic fires
nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.contract.registry import default_registry
from shared.metrics import messages
from shared.metrics.catalog import default_catalog
from shared.metrics.evaluate import DuckDbRunner, Evaluator, PostgresRunner, grid_for
from shared.policy.privacy import Pseudonymiser
from shared.settings import Settings
from shared.storage.warm.query import open_views
from telemetry_cli.generator import CACHE_COLLAPSE_OPERATION, RUNAWAY_USER, Incident
from telemetry_cli.history import fill_history
from telemetry_cli.metrics.backtest import MetricBacktest, backtest
from tests.integration.tiers import Warm, fresh_tiers

pytestmark = pytest.mark.integration

END = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
START = END - timedelta(days=9)
#: incident kind → (hours before END it starts, hours it lasts)
PLANTED = {
    "llm_latency": (150, 3),
    "bad_client": (130, 3),
    "token_burn": (110, 8),
    "bias_flags": (70, 4),
    "llm_errors": (40, 3),
    "runaway_user": (36, 4),
    "simulacra_shift": (20, 8),
    "cache_collapse": (14, 4),
}
#: The metrics each incident must fire, with their runbook page.
FIRES = {
    "api_latency_p95": ("llm_latency", "llm-latency.md"),
    "rejected_event_rate": ("bad_client", "rejected-events.md"),
    "api_latency_p99": ("llm_latency", "llm-latency.md"),
    "tokens_per_node": ("token_burn", "llm-cost.md"),
    "cost_per_conversation": ("token_burn", "llm-cost.md"),
    "bias_flag_rate": ("bias_flags", "bias-flag-rate.md"),
    "llm_error_rate": ("llm_errors", "llm-errors.md"),
    "llm_success_pct": ("llm_errors", "llm-errors.md"),
    "simulacra_level_drift": ("simulacra_shift", "simulacra-drift.md"),
    "llm_spend_per_user": ("runaway_user", "llm-spend.md"),
    "cache_hit_rate_vs_baseline": ("cache_collapse", "llm-cache.md"),
}


@pytest.fixture(scope="module")
def history(services: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warm]:
    """Nine days of sessions with the incidents above; all but the last day snapshotted."""
    incidents = [
        Incident(kind, END - timedelta(hours=start), END - timedelta(hours=start - hours))
        for kind, (start, hours) in PLANTED.items()
    ]
    with fresh_tiers(services, tmp_path_factory.mktemp("history")) as tiers:
        stored = fill_history(
            tiers.engine, tiers.settings, START, END - timedelta(days=1), 50, incidents, seed=5
        )
        tiers.snapshotter().run()
        stored += fill_history(
            tiers.engine, tiers.settings, END - timedelta(days=1), END, 50, incidents, seed=6
        )
        assert stored > 200_000
        yield tiers


@pytest.fixture(scope="module")
def replay(history: Warm) -> dict[str, MetricBacktest]:
    registry = default_registry()
    con = open_views(history.settings, history.engine, registry, "both")
    results = backtest(default_catalog(), Evaluator(DuckDbRunner(con), registry), START, END)
    return {r.metric.name: r for r in results}


def test_the_backtest_reads_both_tiers(history: Warm) -> None:
    assert history.files("telemetry_events") and history.files("api_calls_log")


#: The group each grouped metric's incident must name (the runaway user as its pseudonym).
GROUPS: dict[str, Callable[[Settings], str]] = {
    "llm_spend_per_user": lambda s: Pseudonymiser(s.pseudonym_keys).pseudonym(RUNAWAY_USER)[1],
    "cache_hit_rate_vs_baseline": lambda s: CACHE_COLLAPSE_OPERATION,
}


@pytest.mark.parametrize("name", sorted(FIRES))
def test_each_planted_incident_fires_once_and_resolves_once_with_its_runbook(
    replay: dict[str, MetricBacktest], history: Warm, name: str
) -> None:
    history_settings = history.settings
    result = replay[name]
    kind, runbook = FIRES[name]
    start_h, hours = PLANTED[kind]
    began = END - timedelta(hours=start_h)
    firing = [n for n in result.notices if n.kind == "firing"]
    resolved = [n for n in result.notices if n.kind == "resolved"]
    assert len(firing) == 1, result.to_json(START, END)["notices"]
    assert len(resolved) == 1, result.to_json(START, END)["notices"]
    assert began < firing[0].at <= began + timedelta(hours=hours) + result.metric.window_td
    assert firing[0].at < resolved[0].at
    facts = messages.details(result.metric, firing[0], "docs/runbooks/")
    assert facts["runbook"] == f"docs/runbooks/{runbook}"
    assert facts["n"] >= result.metric.min_sample and facts["value"] is not None
    if result.metric.group_by is not None:  # the right group, named, resolved once
        assert firing[0].group == resolved[0].group == GROUPS[name](history_settings)
        assert facts["group"] == firing[0].group and facts["more_groups_breaching"] == 0
        assert firing[0].group[:16] in messages.summary(result.metric, firing[0])


def test_normal_traffic_fires_nothing_else(replay: dict[str, MetricBacktest]) -> None:
    for name, result in replay.items():
        if name in FIRES:
            continue
        assert result.count("firing") == 0, (name, result.to_json(START, END)["notices"])
        per_week = result.firing_per_week(START, END)
        assert max(per_week.values()) <= 1


def test_every_metric_is_judged_on_most_evaluations(replay: dict[str, MetricBacktest]) -> None:
    for name, result in replay.items():
        judged = sum(1 for o in result.observations if o.status == "ok")
        assert judged >= 0.9 * len(result.observations), name


def test_postgres_and_duckdb_give_the_same_values(history: Warm) -> None:
    """The hot tier's SQL on PostgreSQL equals the same metric over DuckDB's views."""
    registry = default_registry()
    hot = Evaluator(PostgresRunner(history.engine), registry)
    con = open_views(history.settings, history.engine, registry, "hot")
    duck = Evaluator(DuckDbRunner(con), registry)
    for metric in default_catalog():
        if metric.kind == "gauge":
            continue
        grid = grid_for(metric, END - timedelta(hours=12), END)
        pg_values = [(o.status, o.value, o.n) for o in hot.evaluate(metric, grid)]
        duck_values = [(o.status, o.value, o.n) for o in duck.evaluate(metric, grid)]
        assert [s for s, _, _ in pg_values] == [s for s, _, _ in duck_values], metric.name
        assert [n for _, _, n in pg_values] == [n for _, _, n in duck_values], metric.name
        for (_, a, _), (_, b, _) in zip(pg_values, duck_values, strict=True):
            assert (a is None) == (b is None), metric.name
            if a is not None and b is not None:
                assert a == pytest.approx(b, rel=1e-9, abs=1e-12), metric.name


def test_a_time_evaluated_alone_equals_that_time_within_a_range(history: Warm) -> None:
    """A scheduled run's one evaluation time (no expansion) and a backtest's range (buckets spread
    over the windows) give the same values on both engines."""
    registry = default_registry()
    con = open_views(history.settings, history.engine, registry, "hot")
    for evaluator in (
        Evaluator(PostgresRunner(history.engine), registry),
        Evaluator(DuckDbRunner(con), registry),
    ):
        for metric in default_catalog():
            if metric.kind == "gauge":
                continue
            grid = grid_for(metric, END - timedelta(hours=3), END)
            ranged = evaluator.evaluate(metric, grid)
            assert len(ranged) > 2, metric.name
            for observation in (ranged[0], ranged[len(ranged) // 2], ranged[-1]):
                at = observation.at
                (alone,) = evaluator.evaluate(metric, grid_for(metric, at, at))
                assert (alone.status, alone.n) == (observation.status, observation.n), metric.name
                assert (alone.value is None) == (observation.value is None), metric.name
                if alone.value is not None and observation.value is not None:
                    assert alone.value == pytest.approx(observation.value, rel=1e-9), metric.name


def test_cli_backtest_prints_alerts_per_week(history: Warm, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "DATABASE_URL": history.settings.database_url.get_secret_value(),
        "TELEMETRY_BUCKET": history.settings.telemetry_bucket,
    }
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "telemetry_cli.cli",
            "metrics",
            "backtest",
            "--days",
            "9",
            "--metric",
            "llm_error_rate",
            "--metric",
            "steelmanning_score",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    lines = {line.split()[0]: line for line in out.stdout.splitlines()}
    assert "firing   1 resolved   1" in lines["llm_error_rate"]
    assert "firing   0 resolved   0" in lines["steelmanning_score"]
    assert "per week" in lines["llm_error_rate"]


def test_materialized_views_and_daily_parquet_hold_the_catalog_values(history: Warm) -> None:
    import duckdb

    from shared.metrics.materialize import metrics_object_name, refresh_views, write_days

    registry = default_registry()
    catalog = default_catalog()
    created = refresh_views(history.engine, catalog, registry)
    assert set(created.values()) == {"created"}
    assert set(refresh_views(history.engine, catalog, registry).values()) == {"refreshed"}

    metric = catalog.get("llm_error_rate")
    hot = Evaluator(PostgresRunner(history.engine), registry)
    expected = {
        o.at: o.value for o in hot.evaluate(metric, grid_for(metric, END - timedelta(hours=6), END))
    }
    with history.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT time, value FROM metric_llm_error_rate WHERE time >= now() - interval '6 hours'"
        ).all()
    got = {t: v for t, v in rows if t in expected}
    assert len(got) >= 20
    for at, value in got.items():
        assert value == pytest.approx(expected[at])
    with history.engine.connect() as conn:
        shares = conn.exec_driver_sql(
            "SELECT time, sum(share) FROM metric_simulacra_level_drift GROUP BY time"
        ).all()
    assert shares and all(s == pytest.approx(1.0) for _, s in shares)

    con = open_views(history.settings, history.engine, registry, "both")
    day = (END - timedelta(days=2)).date()
    written = write_days(history.bucket, catalog, Evaluator(DuckDbRunner(con), registry), [day])
    path = history.tmp / "metrics.parquet"
    history.bucket.blob(metrics_object_name(day)).download_to_filename(str(path))
    table = duckdb.sql(
        f"SELECT metric, count(*), count(value) FROM read_parquet('{path}') GROUP BY 1"
    ).fetchall()
    per_metric = {m: (n, valued) for m, n, valued in table}
    assert sum(n for n, _ in per_metric.values()) == written[day.isoformat()]
    assert per_metric["llm_error_rate"][0] == 96 and per_metric["tokens_per_node"][0] == 24
    generation = history.bucket.get_blob(metrics_object_name(day)).generation
    write_days(history.bucket, catalog, Evaluator(DuckDbRunner(con), registry), [day])
    assert history.bucket.get_blob(metrics_object_name(day)).generation == generation


def test_every_dashboard_panel_reads_its_view_with_data(history: Warm) -> None:
    import json

    from shared.metrics.materialize import refresh_views
    from telemetry_cli.metrics.dashboards import dashboards_json

    refresh_views(history.engine, default_catalog(), default_registry())
    boards = dashboards_json(default_catalog())
    assert set(boards) == {"llm-cost.json", "product-quality.json", "user-feedback-loop.json"}
    panels = 0
    for text in boards.values():
        board = json.loads(text)
        assert board["style"] == "dark"
        for panel in board["panels"]:
            panels += 1
            assert panel["links"][0]["url"].startswith("${runbook_base}")
            assert panel["datasource"]["type"] == "grafana-postgresql-datasource"
            sql = panel["targets"][0]["rawSql"].replace(
                "$__timeFilter(time)", "time > now() - interval '7 days'"
            )
            with history.engine.connect() as conn:
                rows = conn.exec_driver_sql(sql).all()
            assert rows, panel["title"]
    assert panels == sum(1 for m in default_catalog() if m.kind != "gauge")


def test_the_report_renders_every_chart_with_data_in_chromium(
    history: Warm, browser: Any, tmp_path: Path
) -> None:
    from telemetry_cli.metrics.live_report import ReportServer
    from telemetry_cli.metrics.report import render_report

    registry = default_registry()
    con = open_views(history.settings, history.engine, registry, "both")
    evaluator = Evaluator(DuckDbRunner(con), registry)

    def render() -> str:
        return render_report(default_catalog(), evaluator, START, END, "docs/runbooks/", live=True)

    server = ReportServer(render).start()
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        blocked: list[str] = []
        page.route(
            "**/*",
            lambda route: (
                route.continue_()
                if route.request.url.startswith(server.url)
                else (blocked.append(route.request.url), route.abort())
            ),
        )
        # The server evaluates the whole catalog over nine days before it answers: on a loaded
        # machine that takes longer than Playwright's default 30 s. What is tested is the page.
        page.goto(server.url, timeout=180_000)
        page.wait_for_function(
            "[...document.querySelectorAll('.card')].every(c => c.querySelector('.main-svg'))",
            timeout=120_000,
        )
        charts = page.evaluate(
            """() => [...document.querySelectorAll('.card')].map(c => ({
                metric: c.dataset.metric,
                declared: Number(c.dataset.points),
                drawn: (c.querySelector('.js-plotly-plot')._fullData || [])
                    .reduce((sum, trace) => sum + (trace.x ? trace.x.length : 0), 0),
                runbook: c.querySelector('a').getAttribute('href'),
            }))"""
        )
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        assert (tmp_path / "report.png").stat().st_size > 50_000
    finally:
        server.stop()
    assert blocked == []  # no CDN: the page needs nothing but itself
    expected = {m.name for m in default_catalog() if m.kind != "gauge"}
    assert {c["metric"] for c in charts} == expected
    for chart in charts:
        assert chart["drawn"] > 20 and chart["drawn"] == chart["declared"], chart
        assert chart["runbook"].startswith("docs/runbooks/")
    html = render()
    card = html[html.index('data-metric="llm_error_rate"') :]
    assert "1 alert(s): " in card[: card.index("runbook</a>")]


def test_a_breakdown_by_speaker_equals_the_metric_over_that_speakers_rows(history: Warm) -> None:
    from shared.metrics.evaluate import breakdown

    registry = default_registry()
    metric = default_catalog().get("bias_flag_rate")
    con = open_views(history.settings, history.engine, registry, "both")
    start = END - timedelta(days=3)
    slices = breakdown(Evaluator(DuckDbRunner(con), registry), metric, "speaker_id", start, END)
    assert len(slices) >= 30 and slices[0].n >= slices[-1].n
    top = slices[0]
    with history.engine.connect() as conn:
        flagged, analysed = conn.exec_driver_sql(
            "SELECT count(*) FILTER (WHERE name = 'bias.flagged'), "
            "count(*) FILTER (WHERE name = 'simulacra.classified') FROM telemetry_events "
            f"WHERE props->>'speaker_id' = '{top.group}' "
            f"AND event_ts >= '{start.isoformat()}' AND event_ts < '{END.isoformat()}'"
        ).one()
    assert top.n == analysed and top.value == pytest.approx(100 * flagged / analysed)
    drift = breakdown(
        Evaluator(DuckDbRunner(con), registry),
        default_catalog().get("simulacra_level_drift"),
        "speaker_id",
        start,
        END,
    )
    assert drift and all(0 <= s.value <= 1 for s in drift if s.value is not None)
    with pytest.raises(ValueError, match="cannot be broken down"):
        breakdown(Evaluator(DuckDbRunner(con), registry), metric, "model", start, END)


def test_the_report_draws_nothing_after_it_was_made_and_says_why_a_chart_is_empty(
    history: Warm, browser: Any
) -> None:
    """Regression: a report asked for a period ending in the future drew values for windows
    that had not closed, and an empty chart drew a bare axis from -1 to 6."""
    from telemetry_cli.metrics.report import render_report

    registry = default_registry()
    con = open_views(history.settings, history.engine, registry, "both")
    evaluator = Evaluator(DuckDbRunner(con), registry)
    catalog = default_catalog()
    made = END - timedelta(hours=2, minutes=29)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})

    def charts(html: str) -> list[dict[str, Any]]:
        page.set_content(html, timeout=120_000)
        page.wait_for_function(
            "[...document.querySelectorAll('.card')].every(c => c.querySelector('.main-svg'))",
            timeout=120_000,
        )
        return list(
            page.evaluate(
                r"""() => [...document.querySelectorAll('.card')].map(c => ({
                    metric: c.dataset.metric,
                    empty: c.dataset.empty || null,
                    last: Math.max(0, ...(c.querySelector('.js-plotly-plot')._fullData || [])
                        .flatMap(t => (t.x || []).map(x => {
                            const iso = String(x).replace(' ', 'T');
                            return Date.parse(/(Z|[+-]\d\d:?\d\d)$/.test(iso) ? iso : iso + 'Z');
                        }))),
                    note: c.querySelector('.annotation-text')?.textContent || null,
                    yticks: c.querySelectorAll('.ytick').length,
                }))"""
            )
        )

    recent = charts(
        render_report(
            catalog, evaluator, END - timedelta(days=1), END + timedelta(hours=6), "r/", now=made
        )
    )
    drawn = [c for c in recent if c["empty"] is None]
    assert drawn, recent
    for chart in drawn:
        assert 0 < chart["last"] <= made.timestamp() * 1000, chart

    quiet = START - timedelta(days=40)
    empty = charts(render_report(catalog, evaluator, quiet, quiet + timedelta(days=1), "r/"))
    assert {c["metric"] for c in empty} == {m.name for m in catalog if m.kind != "gauge"}
    for chart in empty:
        assert chart["empty"] == "no data in this period: no events", chart
        assert chart["note"] == chart["empty"] and chart["yticks"] == 0, chart
