"""Render the catalog's reference page (docs/metrics.md)."""

from __future__ import annotations

from shared.metrics.catalog import Catalog, Measure, Metric

HEADER = (
    "# Metrics catalog\n\n"
    "<!-- Generated from shared/metrics/catalog.yaml by `telemetry metrics docs`. "
    "Do not edit: `make test` fails when this page has drifted. -->\n\n"
    "Every count and sum is re-weighted by `1 / sample_rate`. A metric is evaluated every "
    "grain over its window; it fires when N of the last M evaluations breach, resolves after "
    "`keep_firing_for` without a breach, and waits `cooldown` after a resolve before it fires "
    "again. Below the minimum sample a value is shown but never judged.\n\n"
)


def _measure(measure: Measure) -> str:
    what = {
        "count": "count",
        "sum": f"sum of {' + '.join(f'`{f}`' for f in measure.fields)}",
        "count_distinct": f"distinct `{measure.fields[0] if measure.fields else ''}`",
    }[measure.agg]
    if measure.field:
        what = f"`{measure.field}`"
    source = (
        ", ".join(f"`{e}`" for e in measure.events)
        or (f"category `{measure.category}`" if measure.category else "")
        or f"`{measure.table}`"
    )
    filters = [f"`{k}` in {list(v)}" for k, v in measure.where.items()]
    filters += [f"`{k}` not in {list(v)}" for k, v in measure.where_not.items()]
    text = f"{what} of {source}"
    if filters:
        text += " where " + " and ".join(filters)
    if measure.unweighted:
        text += " (stored rows, not re-weighted)"
    return text


def _definition(metric: Metric) -> str:
    if metric.kind == "ratio" and metric.numerator and metric.denominator:
        ratio = f"{_measure(metric.numerator)} ÷ {_measure(metric.denominator)}"
        if metric.complement:
            ratio = f"1 − ({ratio})"
        return f"{ratio} × {metric.scale:g}" if metric.scale != 1 else ratio
    if metric.kind == "total" and metric.measure:
        return f"total of {_measure(metric.measure)}"
    if metric.kind == "quantile" and metric.measure:
        return f"weighted p{(metric.quantile or 0) * 100:g} of {_measure(metric.measure)}"
    if metric.kind == "distribution" and metric.measure and metric.drift:
        return (
            f"{metric.drift.method.replace('_', '-')} divergence of {_measure(metric.measure)} "
            f"from the {metric.drift.baseline} before the window (baseline of at least "
            f"{metric.drift.min_sample})"
        )
    return f"probe `{metric.probe}` (live only: no backtest)"


def render_markdown(catalog: Catalog) -> str:
    """The whole reference page as Markdown."""
    out = [HEADER, "| metric | dashboard | unit | warn | critical | runbook |\n"]
    out.append("| --- | --- | --- | --- | --- | --- |\n")
    for m in catalog:
        arrow = ">" if m.thresholds.direction == "above" else "<"
        out.append(
            f"| [`{m.name}`](#{m.name}) | {m.dashboard} | {m.unit} | {arrow} {m.thresholds.warn:g} "
            f"| {arrow} {m.thresholds.critical:g} | [{m.runbook}](runbooks/{m.runbook}) |\n"
        )
    for m in catalog:
        out.append(f"\n## {m.name}\n\n{m.description}\n\n")
        out.append(f"- **definition**: {_definition(m)}\n")
        out.append(f"- **kind** {m.kind}, **source** {m.source} tier, **owner** {m.owner}\n")
        out.append(
            f"- **window** {m.window} every {m.grain}; fires on {m.fire.n} of {m.fire.m} "
            f"breaching evaluations; keeps firing for {m.keep_firing_for}; cooldown {m.cooldown}\n"
        )
        out.append(f"- **minimum sample** {m.min_sample}; **channels** {', '.join(m.channels)}\n")
        if m.group_by:
            against = f", against its own {m.baseline} before the window" if m.baseline else ""
            out.append(
                f"- **grouped** by `{m.group_by}`: one alert per group that breaches{against}; "
                f"at most {m.max_groups} groups fire per run\n"
            )
        if m.breakdowns:
            by = ", ".join(f"`{b}`" for b in m.breakdowns)
            out.append(f"- **breakdowns** {by} (`telemetry metrics breakdown {m.name} --by …`)\n")
    return "".join(out)
