"""``telemetry report``: the dashboards' charts as one self-contained HTML page.

For people without Grafana: the same metrics, grouped like the dashboards, each with its warn
and critical thresholds and a link to its runbook, plus the alerts the period's values would
have sent (the backtest's state machine). plotly.js is embedded in the page, so it opens offline
with no CDN. Each chart's ``div`` carries ``data-metric`` and ``data-points`` for checks.

It shows only what happened: every series stops at the time the page is generated (a window
that has not closed yet has no value), and a chart with nothing to draw says so and why
(``data-empty``) instead of drawing a bare axis.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from shared.metrics.alerting import replay
from shared.metrics.catalog import Catalog, Metric
from shared.metrics.evaluate import Evaluator, Observation, breakdown, grid_for
from telemetry_cli.metrics.dashboards import DASHBOARDS

#: Groups shown per breakdown table.
BREAKDOWN_ROWS = 5

_STYLE = """
body { background: #111217; color: #ccccdc; font: 14px/1.45 system-ui, sans-serif; margin: 0; }
header { padding: 18px 28px; border-bottom: 1px solid #2c3235; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 28px 8px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr));
        gap: 16px; padding: 0 28px; }
.card { background: #181b1f; border: 1px solid #2c3235; border-radius: 4px; padding: 8px; }
.meta { font-size: 12px; color: #8e8e8e; padding: 0 6px 4px; }
a { color: #6e9fff; } .alerts { color: #ff7383; } .quiet { color: #73bf69; }
.breakdown { font-size: 12px; margin: 4px 6px; border-collapse: collapse; }
.breakdown td, .breakdown th { padding: 1px 10px 1px 0; text-align: left; }
"""


def empty_reason(metric: Metric, observations: list[Observation]) -> str:
    """Why a metric has no point to draw in a period."""
    if any(o.status == "error" for o in observations):
        return "no data in this period: the metric could not be evaluated"
    if any(o.status == "insufficient" for o in observations):
        return (
            "no data in this period: every window held fewer than the minimum sample of"
            f" {metric.min_sample}"
        )
    return "no data in this period: no events"


def _figure(
    metric: Metric, observations: list[Observation], start: datetime, end: datetime
) -> tuple[go.Figure, int]:
    fig = go.Figure()
    if metric.kind == "distribution":
        categories = sorted({c for o in observations for c in o.shares})
        for category in categories:
            points = [(o.at, o.shares[category]) for o in observations if category in o.shares]
            fig.add_trace(
                go.Scatter(
                    x=[p[0] for p in points],
                    y=[p[1] for p in points],
                    name=f"level {category}",
                    stackgroup="shares",
                    mode="lines",
                )
            )
        count = sum(len(o.shares) for o in observations)
        fig.update_yaxes(tickformat=".0%", range=[0, 1])
    else:
        judged = [o for o in observations if o.status == "ok" and o.value is not None]
        fig.add_trace(
            go.Scatter(
                x=[o.at for o in judged],
                y=[o.value for o in judged],
                name=metric.name,
                mode="lines",
                line={"width": 2},
            )
        )
        count = len(judged)
        for level, colour in (("warn", "#fade2a"), ("critical", "#f2495c")):
            value = getattr(metric.thresholds, level)
            fig.add_hline(y=value, line={"color": colour, "dash": "dash", "width": 1})
    if count == 0:
        fig.data = ()
        fig.layout.shapes = ()
        fig.add_annotation(
            text=empty_reason(metric, observations),
            showarrow=False,
            xref="paper",
            yref="paper",
            x=0.5,
            y=0.5,
            font={"size": 13, "color": "#8e8e8e"},
        )
        fig.update_xaxes(range=[start, end])
        fig.update_yaxes(visible=False)
    fig.update_layout(
        template="plotly_dark",
        paper_bgcolor="#181b1f",
        plot_bgcolor="#181b1f",
        height=300,
        margin={"l": 50, "r": 20, "t": 36, "b": 36},
        title={"text": metric.name.replace("_", " "), "font": {"size": 14}},
        showlegend=metric.kind == "distribution",
        yaxis_title="share" if metric.kind == "distribution" else metric.unit,
    )
    return fig, count


def _breakdowns(evaluator: Evaluator, metric: Metric, start: datetime, end: datetime) -> str:
    """A small table per breakdown field: the most observed groups (pseudonyms shortened)."""
    out = []
    for by in metric.breakdowns:
        slices = [s for s in breakdown(evaluator, metric, by, start, end) if s.status == "ok"]
        if not slices:
            continue
        rows = "".join(
            f"<tr><td>{html.escape(s.group[:12])}</td><td>{s.value:,.4g}</td><td>{s.n}</td></tr>"
            for s in slices[:BREAKDOWN_ROWS]
            if s.value is not None
        )
        out.append(
            f'<table class="breakdown" data-by="{html.escape(by)}"><caption>by {html.escape(by)}'
            f" (top {min(len(slices), BREAKDOWN_ROWS)} of {len(slices)} judged)</caption>"
            f"<tr><th>{html.escape(by)}</th><th>value</th><th>n</th></tr>{rows}</table>"
        )
    return "".join(out)


def render_report(
    catalog: Catalog,
    evaluator: Evaluator,
    start: datetime,
    end: datetime,
    runbook_base: str,
    live: bool = False,
    now: datetime | None = None,
) -> str:
    """The whole page, as of ``now`` (None: the present): nothing after it is drawn."""
    made_at = now or datetime.now(UTC)
    end = min(end, made_at)
    sections = []
    for title in DASHBOARDS:
        cards = []
        for metric in catalog:
            if metric.dashboard != title or metric.kind == "gauge":
                continue
            observations = (
                evaluator.evaluate(metric, grid_for(metric, start, end)) if start < end else []
            )
            _, notices = replay(metric, observations)
            fired = [n for n in notices if n.kind == "firing"]
            fig, points = _figure(metric, observations, start, end)
            empty = (
                f' data-empty="{html.escape(empty_reason(metric, observations), quote=True)}"'
                if points == 0
                else ""
            )
            chart = fig.to_html(
                full_html=False,
                include_plotlyjs=False,
                div_id=f"chart-{metric.name}",
                config={"displaylogo": False, "responsive": True},
            )
            alerts = (
                f'<span class="alerts">{len(fired)} alert(s): '
                + ", ".join(f"{n.severity} at {n.at:%Y-%m-%d %H:%M}" for n in fired)
                + "</span>"
                if fired
                else '<span class="quiet">no alert</span>'
            )
            runbook = html.escape(runbook_base + metric.runbook, quote=True)
            slices = _breakdowns(evaluator, metric, start, end)
            cards.append(
                f'<div class="card" data-metric="{metric.name}" data-points="{points}"{empty}>'
                f"{chart}"
                f'<div class="meta">{html.escape(metric.description)} · window {metric.window}'
                f' · {alerts} · <a href="{runbook}">runbook</a></div>{slices}</div>'
            )
        if cards:
            sections.append(
                f'<h2>{html.escape(title)}</h2><div class="grid">{"".join(cards)}</div>'
            )
    refresh = '<meta http-equiv="refresh" content="60">' if live else ""
    made = made_at.strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>Telemetry report {start:%Y-%m-%d} to {end:%Y-%m-%d}</title>{refresh}"
        f"<style>{_STYLE}</style><script>{get_plotlyjs()}</script></head><body>"
        f"<header><h1>Telemetry report</h1>{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"
        f" · generated {made} · values re-weighted by sample rate; points below a metric's "
        "minimum sample are not drawn</header>" + "".join(sections) + "</body></html>"
    )
