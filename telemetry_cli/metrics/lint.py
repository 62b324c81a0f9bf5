"""Catalog lint: every metric reads what exists and says where to look when it fires.

* the catalog parses (names, kinds, durations, thresholds, N of M: ``shared/metrics/catalog.py``);
* every event a measure names is in the registry, and every field it reads (or is broken down
  by) is a column of its table or a prop that one of those events declares;
* every gauge names a known probe;
* every runbook page exists under ``docs/runbooks/``.
"""

from __future__ import annotations

from pathlib import Path

from shared.contract.registry.loader import Registry
from shared.metrics import sql
from shared.metrics.catalog import CATALOG_PATH, Catalog, CatalogError, Measure, load_catalog
from shared.metrics.probes import PROBE_NAMES

ROOT = Path(__file__).resolve().parents[2]


def _measure_problems(
    measure: Measure, registry: Registry, extra: tuple[str, ...] = ()
) -> list[str]:
    problems = []
    names = registry.names()
    for event in measure.events:
        if event not in names:
            problems.append(f"event {event!r} is not in the registry")
    declared: set[str] = set()
    for spec in registry:
        if spec.name in measure.events:
            declared |= set((spec.props_schema.get("properties") or {}).keys())
    for field in sorted(measure.read_fields() | set(extra)):
        try:
            sql.field_sql(measure, field, "postgres", registry)
        except sql.UnknownField as exc:
            problems.append(str(exc))
            continue
        column = field in sql.TABLES[measure.table].columns
        if not column and measure.events and field not in declared:
            problems.append(f"{field!r} is not a prop of {', '.join(measure.events)}")
    return problems


def lint_catalog(
    registry: Registry, path: Path | None = None, root: Path = ROOT
) -> tuple[Catalog | None, list[str]]:
    """The catalog and its problems (``metric: problem`` lines); no catalog when it won't parse."""
    try:
        catalog = load_catalog(path or CATALOG_PATH)
    except (CatalogError, ValueError) as exc:
        return None, [str(exc)]
    problems = []
    for metric in catalog:
        for measure in metric.measures:
            grouped = (metric.group_by,) if metric.group_by else ()
            found = _measure_problems(measure, registry, (*metric.breakdowns, *grouped))
            problems += [f"{metric.name}: {p}" for p in found]
        if metric.kind == "gauge" and metric.probe not in PROBE_NAMES:
            problems.append(
                f"{metric.name}: unknown probe {metric.probe!r}; one of {sorted(PROBE_NAMES)}"
            )
        if not (root / metric.runbook_path).is_file():
            problems.append(f"{metric.name}: runbook {metric.runbook_path} is missing")
    return catalog, problems
