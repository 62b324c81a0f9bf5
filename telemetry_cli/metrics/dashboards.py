"""Grafana dashboards generated from the catalog with Grafana's own Foundation SDK.

Three dashboards, "LLM Cost", "Product Quality" and "User Feedback Loop", dark, one time-series
panel per metric on a PostgreSQL data source (chosen on import through the ``datasource``
variable). Each panel reads the metric's materialized view (``shared/metrics/materialize.py``),
only the values judged on a full sample, draws the warn and critical thresholds, and links its
runbook (``runbook_base`` + page). A distribution is drawn as its category shares, stacked.
Gauges have no history to draw and are left out.
"""

from __future__ import annotations

import json
import re

from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

from shared.metrics.catalog import Catalog, Metric
from shared.metrics.materialize import view_name

DASHBOARDS = ("LLM Cost", "Product Quality", "User Feedback Loop")
DATASOURCE = model.DataSourceRef(type_val="grafana-postgresql-datasource", uid="${datasource}")
_UNITS = {"percent": "percent", "ms": "ms", "usd": "currencyUSD", "hours": "h"}


class PostgresQuery(cogvariants.Dataquery):
    """A raw-SQL query of Grafana's PostgreSQL data source (the SDK has no builder for it)."""

    def __init__(self, ref_id: str, raw_sql: str) -> None:
        self.ref_id = ref_id
        self.raw_sql = raw_sql

    def to_json(self) -> dict[str, object]:
        """The target as Grafana stores it."""
        return {
            "refId": self.ref_id,
            "datasource": DATASOURCE,
            "editorMode": "code",
            "format": "time_series",
            "rawQuery": True,
            "rawSql": self.raw_sql,
        }


class PostgresQueryBuilder(cogbuilder.Builder[PostgresQuery]):
    """Builds a :class:`PostgresQuery`."""

    def __init__(self, ref_id: str, raw_sql: str) -> None:
        self._query = PostgresQuery(ref_id, raw_sql)

    def build(self) -> PostgresQuery:
        """The query."""
        return self._query


def panel_sql(metric: Metric) -> str:
    """The panel's SQL over the metric's view."""
    view = view_name(metric)
    if metric.kind == "distribution":
        return (
            f"SELECT time, category AS metric, share FROM {view} "  # noqa: S608 - catalog names
            f"WHERE $__timeFilter(time) AND n >= {metric.min_sample} ORDER BY 1, 2"
        )
    return (
        f'SELECT time, value AS "{metric.name}" FROM {view} '  # noqa: S608 - catalog names
        f"WHERE $__timeFilter(time) AND n >= {metric.min_sample} ORDER BY 1"
    )


def _panel(metric: Metric, index: int) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(metric.name.replace("_", " "))
        .description(f"{metric.description} Window {metric.window}, every {metric.grain}.")
        .datasource(DATASOURCE)
        .with_target(PostgresQueryBuilder("A", panel_sql(metric)))
        .grid_pos(model.GridPos(h=8, w=12, x=12 * (index % 2), y=8 * (index // 2)))
        .links(
            [
                dash.DashboardLink(f"Runbook: {metric.runbook}")
                .type(model.DashboardLinkType.LINK)
                .url(f"${{runbook_base}}{metric.runbook}")
                .target_blank(True)
            ]
        )
        .line_width(2)
        .fill_opacity(10)
        .legend(
            common_builder.VizLegendOptions()
            .show_legend(True)
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
        )
        .tooltip(common_builder.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI))
    )
    if metric.kind == "distribution":
        return (
            panel.unit("percentunit")
            .min(0)
            .max(1)
            .stacking(common_builder.StackingConfig().mode(common.StackingMode.PERCENT))
        )
    steps = [
        model.Threshold(value=None, color="green"),
        model.Threshold(
            value=min(metric.thresholds.warn, metric.thresholds.critical), color="yellow"
        ),
        model.Threshold(value=max(metric.thresholds.warn, metric.thresholds.critical), color="red"),
    ]
    if metric.thresholds.direction == "below":
        steps = [
            model.Threshold(value=None, color="red"),
            model.Threshold(value=metric.thresholds.critical, color="yellow"),
            model.Threshold(value=metric.thresholds.warn, color="green"),
        ]
    return (
        panel.unit(_UNITS.get(metric.unit, "short"))
        .thresholds(dash.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE).steps(steps))
        .thresholds_style(
            common_builder.GraphThresholdsStyleConfig().mode(
                common.GraphTresholdsStyleMode.LINE_AND_AREA
            )
        )
    )


def build_dashboard(title: str, metrics: list[Metric]) -> dash.Dashboard:
    """One dashboard of the catalog."""
    uid = "telemetry-" + re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    board = (
        dash.Dashboard(title)
        .uid(uid)
        .tags(["telemetry", "generated"])
        .style("dark")
        .timezone("utc")
        .refresh("5m")
        .time("now-7d", "now")
        .with_variable(
            dash.DatasourceVariable("datasource")
            .label("PostgreSQL")
            .type("grafana-postgresql-datasource")
        )
        .with_variable(
            dash.ConstantVariable("runbook_base")
            .label("Runbook base URL")
            .value("https://github.com/your-org/telemetry/blob/main/docs/runbooks/")
        )
    )
    for index, metric in enumerate(metrics):
        board = board.with_panel(_panel(metric, index))
    return board


def dashboards_json(catalog: Catalog) -> dict[str, str]:
    """Each dashboard's JSON by file name (``llm-cost.json``, …)."""
    out = {}
    for title in DASHBOARDS:
        metrics = [m for m in catalog if m.dashboard == title and m.kind != "gauge"]
        board = build_dashboard(title, metrics).build()
        name = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") + ".json"
        out[name] = json.dumps(board, cls=JSONEncoder, indent=2, sort_keys=True) + "\n"
    return out
