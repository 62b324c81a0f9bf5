"""``telemetry metrics …``: the catalog's lint, docs and dashboards, live checks and backtests."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from telemetry_cli.commands import needs_stack, write_or_check

ROOT = Path(__file__).resolve().parents[2]
DOCS_PATH = ROOT / "docs" / "metrics.md"
DASHBOARDS_DIR = ROOT / "docs" / "dashboards"


@needs_stack
@click.group()
def metrics() -> None:
    """The metrics catalog: list, lint, docs, dashboards, check, evaluate, backtest."""


@metrics.command("list")
def metrics_list() -> None:
    """Every metric of the catalog, one line each."""
    from shared.metrics.catalog import default_catalog

    for m in default_catalog():
        arrow = ">" if m.thresholds.direction == "above" else "<"
        click.echo(
            f"{m.name:<26} {m.kind:<12} {m.source:<4} {m.window:>4}/{m.grain:<4} "
            f"warn {arrow}{m.thresholds.warn:g} crit {arrow}{m.thresholds.critical:g} {m.unit:<10} "
            f"{m.dashboard}"
        )


@metrics.command("lint")
def metrics_lint() -> None:
    """Check the catalog against the registry and the runbooks; exits 1 on any problem."""
    from shared.contract.registry import default_registry
    from telemetry_cli.metrics.lint import lint_catalog

    _, problems = lint_catalog(default_registry())
    for problem in problems:
        click.echo(f"shared/metrics/catalog.yaml: {problem}", err=True)
    if problems:
        sys.exit(1)
    click.echo("catalog ok")


@metrics.command("docs")
@click.option("--check", is_flag=True, help="Fail if docs/metrics.md differs from the catalog.")
def metrics_docs(check: bool) -> None:
    """Write docs/metrics.md from the catalog (or check that it is current)."""
    from shared.metrics.catalog import default_catalog
    from telemetry_cli.metrics.docs import render_markdown

    write_or_check({DOCS_PATH: render_markdown(default_catalog())}, check, "telemetry metrics docs")


@metrics.command("dashboards")
@click.option("--check", is_flag=True, help="Fail if docs/dashboards/ differs from the catalog.")
def metrics_dashboards(check: bool) -> None:
    """Write the Grafana dashboards (docs/dashboards/*.json) from the catalog."""
    from shared.metrics.catalog import default_catalog
    from telemetry_cli.metrics.dashboards import dashboards_json

    files = {
        DASHBOARDS_DIR / name: text for name, text in dashboards_json(default_catalog()).items()
    }
    write_or_check(files, check, "telemetry metrics dashboards")


def _format_value(value: float | None) -> str:
    return "-" if value is None else f"{value:,.4g}"


@metrics.command("check")
@click.option("--metric", "names", multiple=True, help="Only these metrics (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of a table.")
def metrics_check(names: tuple[str, ...], as_json: bool) -> None:
    """Evaluate every metric now, without moving alerts, beside its alert's stored state.

    Exits 1 when a metric cannot be evaluated.
    """
    from shared.contract.registry import default_registry
    from shared.metrics.catalog import default_catalog
    from shared.metrics.evaluate import Evaluator, failed, grid_for, latest_time
    from shared.metrics.probes import probes
    from shared.metrics.run import runner_factory
    from shared.metrics.store import AlertStore
    from shared.settings import get_settings
    from shared.storage.hot.engine import get_engine

    settings, engine, registry = get_settings(), get_engine(), default_registry()
    runners = runner_factory(settings, engine, registry)
    bound = probes(settings, engine)
    states = AlertStore(engine).states()
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    for metric in default_catalog():
        if names and metric.name not in names:
            continue
        at = latest_time(metric, now)
        try:
            evaluator = Evaluator(runners(metric.source), registry)
            obs = evaluator.evaluate(
                metric, grid_for(metric, at, at), bound.get(metric.probe or "")
            )[-1]
        except Exception as exc:
            obs = failed(at, exc)
        state = states.get(metric.name)
        # A grouped metric's thresholds judge each group (a baseline metric's, each group
        # against its own week): the whole's value is shown, not judged.
        judged = obs.value is not None and metric.group_by is None
        level = metric.thresholds.level(obs.value) if judged and obs.value is not None else "-"
        row: dict[str, Any] = {
            "metric": metric.name,
            **obs.to_json(),
            "level": level,
            "alert": state.status if state else "never evaluated",
            "condition": state.condition if state else None,
        }
        if metric.group_by is not None and state is not None:
            firing = sorted(g for g, s in state.groups.items() if s.status == "firing")
            row["alert"] = f"firing for {len(firing)} {metric.group_by}(s)" if firing else "ok"
            row["groups_firing"] = [g[:16] for g in firing]
        rows.append(row)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        for row in rows:
            note = f" ({row['error']})" if row.get("error") else ""
            click.echo(
                f"{row['metric']:<26} {row['status']:<12} {_format_value(row['value']):>10} "
                f"n={row['n']:<7} {row['level']:<8} alert {row['alert']}{note}"
            )
    if any(r["status"] == "error" for r in rows):
        sys.exit(1)


@metrics.command("evaluate")
@click.option("--metric", "names", multiple=True, help="Only these metrics (repeatable).")
def metrics_evaluate(names: tuple[str, ...]) -> None:
    """What the anomaly function does on schedule: evaluate, move alerts, send notices."""
    from shared.metrics.run import anomaly_from_settings
    from shared.settings import get_settings

    report = anomaly_from_settings(get_settings()).run(names=list(names) or None)
    click.echo(json.dumps(report.to_json(), indent=2, default=str))


@metrics.command("materialize")
@click.option("--days-back", type=click.IntRange(0, 180), default=2, show_default=True)
def metrics_materialize(days_back: int) -> None:
    """Refresh the metric views (Grafana's panels) and write the last DAYS-BACK whole days of
    values to gs://BUCKET/analytics/metrics/ (what the anomaly function does hourly)."""
    from shared.metrics.run import anomaly_from_settings
    from shared.settings import get_settings
    from shared.storage.gcs import get_storage_client

    settings = get_settings()
    bucket = get_storage_client(settings).bucket(settings.telemetry_bucket)
    report = anomaly_from_settings(settings).materialize(bucket, days_back)
    for name, action in report.views.items():
        click.echo(f"view metric_{name:<26} {action}")
    for day, rows in report.days.items():
        click.echo(f"day {day}: {rows} values")


@metrics.command("breakdown")
@click.argument("name")
@click.option("--by", required=True, help="The field to break down by (the catalog's breakdowns).")
@click.option("--days", type=click.IntRange(1, 180), default=7, show_default=True)
@click.option("--top", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Every group as JSON.")
def metrics_breakdown(name: str, by: str, days: int, top: int, as_json: bool) -> None:
    """A metric per value of a field (the speaker, for the domain metrics) over the last DAYS,
    over both tiers; groups below the metric's minimum sample are marked, never judged."""
    from shared.contract.registry import default_registry
    from shared.metrics.catalog import default_catalog
    from shared.metrics.evaluate import DuckDbRunner, Evaluator, breakdown
    from shared.settings import get_settings
    from shared.storage.hot.engine import get_engine
    from shared.storage.warm.query import open_views

    try:
        metric = default_catalog().get(name)
    except KeyError as exc:
        raise click.BadParameter(str(exc)) from exc
    if by not in metric.breakdowns:
        raise click.BadParameter(f"{name} breaks down by {list(metric.breakdowns) or 'nothing'}")
    settings, registry = get_settings(), default_registry()
    con = open_views(settings, get_engine(), registry, "both")
    end = datetime.now(UTC)
    slices = breakdown(
        Evaluator(DuckDbRunner(con), registry), metric, by, end - timedelta(days=days), end
    )
    if as_json:
        rows = [{"group": s.group, "value": s.value, "n": s.n, "status": s.status} for s in slices]
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{metric.name} by {by}, last {days} days ({len(slices)} groups, top {top} by n)")
    for item in slices[:top]:
        flag = "" if item.status == "ok" else f"  ({item.status})"
        click.echo(f"  {item.group:<40} {_format_value(item.value):>10} n={item.n}{flag}")


@metrics.command("backtest")
@click.option("--days", type=click.IntRange(1, 180), default=30, show_default=True)
@click.option("--metric", "names", multiple=True, help="Only these metrics (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="The full replay as JSON.")
def metrics_backtest(days: int, names: tuple[str, ...], as_json: bool) -> None:
    """Replay the catalog over the last DAYS of history (warm and hot tiers) and print the
    alerts each metric would have sent, per week."""
    from shared.contract.registry import default_registry
    from shared.metrics.catalog import Catalog, default_catalog
    from shared.metrics.evaluate import DuckDbRunner, Evaluator
    from shared.settings import get_settings
    from shared.storage.hot.engine import get_engine
    from shared.storage.warm.query import open_views
    from telemetry_cli.metrics.backtest import backtest

    settings, registry = get_settings(), default_registry()
    catalog = default_catalog()
    if names:
        catalog = Catalog(metrics=tuple(m for m in catalog if m.name in names))
    end = datetime.now(UTC)
    start = end - timedelta(days=days)
    con = open_views(settings, get_engine(), registry, "both")
    results = []
    for metric in catalog:
        click.echo(f"replaying {metric.name}…", err=True)
        results += backtest(
            Catalog(metrics=(metric,)), Evaluator(DuckDbRunner(con), registry), start, end
        )
    if as_json:
        click.echo(json.dumps([r.to_json(start, end) for r in results], indent=2))
        return
    for result in results:
        weeks = result.firing_per_week(start, end)
        per_week = " ".join(f"{d.isoformat()}:{c}" for d, c in weeks.items())
        click.echo(
            f"{result.metric.name:<26} firing {result.count('firing'):>3} resolved "
            f"{result.count('resolved'):>3} no-data {result.count('no_data'):>3}  "
            f"per week {per_week}"
        )


def _day(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not a date like 2026-11-28") from exc


def render_live_report(days: int = 7) -> str:
    """The report of the last ``days`` over both tiers (what ``make dev`` serves)."""
    from shared.contract.registry import default_registry
    from shared.metrics.catalog import default_catalog
    from shared.metrics.evaluate import DuckDbRunner, Evaluator
    from shared.settings import get_settings
    from shared.storage.hot.engine import get_engine
    from shared.storage.warm.query import open_views
    from telemetry_cli.metrics.report import render_report

    settings, registry = get_settings(), default_registry()
    con = open_views(settings, get_engine(), registry, "both")
    try:
        end = datetime.now(UTC)
        return render_report(
            default_catalog(),
            Evaluator(DuckDbRunner(con), registry),
            end - timedelta(days=days),
            end,
            settings.telemetry_runbook_base_url,
            live=True,
        )
    finally:
        con.close()


@needs_stack
@click.command("report")
@click.option("--from", "start", required=True, help="First day (UTC), e.g. 2026-11-01.")
@click.option("--to", "end", required=True, help="Last day (UTC), included.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("telemetry-report.html"),
    show_default=True,
)
def report(start: str, end: str, out: Path) -> None:
    """One self-contained HTML page with the dashboards' charts (works offline)."""
    from shared.contract.registry import default_registry
    from shared.metrics.catalog import default_catalog
    from shared.metrics.evaluate import DuckDbRunner, Evaluator
    from shared.settings import get_settings
    from shared.storage.hot.engine import get_engine
    from shared.storage.warm.query import open_views
    from telemetry_cli.metrics.report import render_report

    first, last = _day(start), _day(end) + timedelta(days=1)
    if last <= first:
        raise click.BadParameter("--to must not be before --from")
    if last - first > timedelta(days=180):
        raise click.BadParameter("a report spans at most 180 days (the warm tier's retention)")
    settings, registry = get_settings(), default_registry()
    con = open_views(settings, get_engine(), registry, "both")
    click.echo(f"evaluating the catalog from {start} to {end}…", err=True)
    page = render_report(
        default_catalog(),
        Evaluator(DuckDbRunner(con), registry),
        first,
        last,
        settings.telemetry_runbook_base_url,
    )
    out.write_text(page, encoding="utf-8")
    click.echo(f"wrote {out} ({len(page) // 1024} KiB)")


@needs_stack
@click.command("reprice")
@click.option("--since", required=True, help="First day (UTC) of the calls to reprice.")
@click.option("--dry-run", is_flag=True, help="Report the differences; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="The report as JSON.")
def reprice(since: str, dry_run: bool, as_json: bool) -> None:
    """Recompute past calls' cost_usd from their stored tokens under the current price table,
    and print the difference per provider and model (a second run changes nothing)."""
    from tqdm import tqdm

    from shared.llm.pricing import default_price_table
    from shared.storage.hot.engine import get_engine
    from shared.storage.hot.reprice import reprice as run_reprice

    prices = default_price_table()
    with tqdm(desc="calls read", unit=" calls", disable=as_json, file=sys.stderr) as bar:

        def step(seen: int) -> None:
            bar.update(seen - bar.n)

        report = run_reprice(get_engine(), prices, _day(since), dry_run, step)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
        return
    verb = "would change" if dry_run else "changed"
    click.echo(f"price table {report.price_version}: {verb} {report.changed} call(s)")
    for (provider, model), delta in sorted(report.models.items()):
        difference = delta.after_usd - delta.before_usd
        click.echo(
            f"  {provider:<12} {model:<24} {delta.changed:>7} of {delta.calls:<7} "
            f"${delta.before_usd:,.4f} -> ${delta.after_usd:,.4f} ({difference:+,.4f})"
        )
