"""The typed columns of the warm tier's Parquet files, derived from the tables and the registry.

Every envelope column and every ``api_calls_log`` column keeps its type. The props of
``telemetry_events`` become one typed column each, ``props_<name>``, over every prop the
registry declares for events stored there, so a p95 over a numeric prop reads a typed column,
never a JSON string. Types are taken from the props schemas and widened where two events
disagree: ``integer`` with ``number`` is a double, anything else mixed is text. A prop that is
an object or an array is kept as its JSON text. A new prop adds a column; files written before
it simply lack it, which DuckDB (``union_by_name``) and BigQuery read as NULL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.contract.registry.loader import Registry
from shared.storage.hot.partitions import event_day_sql
from shared.storage.hot.tables import (
    LLM_CALL_EVENT,
    SERVER_SET_COLUMNS,
    api_calls_log,
    telemetry_events,
)

#: Each event table's id column (the event_id) and its day column.
ID_COLUMNS = {"telemetry_events": "event_id", "api_calls_log": "call_id"}
#: Rows are sorted by these within a file, so ``name`` and ``user_key`` prune well.
SORT_COLUMNS = {
    "telemetry_events": ("name", "user_key", "event_id"),
    "api_calls_log": ("provider", "model", "user_key", "call_id"),
}
PROPS_PREFIX = "props_"
_CAST = {"integer": "numeric::bigint", "number": "double precision", "boolean": "boolean"}


@dataclass(frozen=True)
class WarmColumn:
    """One Parquet column: its name and the PostgreSQL expression that yields it, typed."""

    name: str
    sql: str


def _json_types(schema: Any) -> set[str]:
    declared = schema.get("type") if isinstance(schema, dict) else None
    if isinstance(declared, str):
        types = {declared}
    elif isinstance(declared, list):
        types = {str(t) for t in declared}
    elif isinstance(schema, dict) and "enum" in schema:
        types = {"string" if isinstance(v, str) else "number" for v in schema["enum"]}
    else:
        types = {"object"}
    return types - {"null"}


def prop_types(registry: Registry) -> dict[str, str]:
    """Each prop of events stored in ``telemetry_events`` and its one warm type."""
    seen: dict[str, set[str]] = {}
    for spec in registry:
        if spec.name == LLM_CALL_EVENT:
            continue
        for name, schema in (spec.props_schema.get("properties") or {}).items():
            if isinstance(schema, dict) and schema.get("x-pii") == "drop":
                continue
            seen.setdefault(name, set()).update(_json_types(schema))
    return {name: _unify(types) for name, types in sorted(seen.items())}


def _unify(types: set[str]) -> str:
    if len(types) == 1:
        return next(iter(types))
    if types == {"integer", "number"}:
        return "number"
    return "json"


def prop_sql(name: str, kind: str) -> str:
    """PostgreSQL: the typed value of prop ``name`` (of warm type ``kind``) from ``props``."""
    quoted = name.replace("'", "''")
    if kind in _CAST:
        return f"(props->>'{quoted}')::{_CAST[kind]}"
    if kind == "string":
        return f"props->>'{quoted}'"
    return f"(props->'{quoted}')::text"


def warm_columns(table: str, registry: Registry) -> list[WarmColumn]:
    """The columns of ``table``'s Parquet files, in file order."""
    source = {"telemetry_events": telemetry_events, "api_calls_log": api_calls_log}[table]
    columns: list[WarmColumn] = []
    for column in source.columns:
        if column.name in SERVER_SET_COLUMNS or column.name == "props":
            continue
        sql = f"{column.name}::text" if column.name == ID_COLUMNS[table] else column.name
        columns.append(WarmColumn(column.name, sql))
    if table == "telemetry_events":
        columns.extend(
            WarmColumn(f"{PROPS_PREFIX}{name}", prop_sql(name, kind))
            for name, kind in prop_types(registry).items()
        )
    return columns


def typed_select_sql(
    table: str,
    columns: list[WarmColumn],
    where: str,
    *,
    with_event_date: bool = False,
    sorted_rows: bool = False,
) -> str:
    """PostgreSQL: the rows of ``table`` matching ``where`` (our own SQL), typed like the files."""
    select = ", ".join(f'{c.sql} AS "{c.name}"' for c in columns)
    if with_event_date:
        select += f", {event_day_sql(table)} AS event_date"
    order = f" ORDER BY {', '.join(SORT_COLUMNS[table])}" if sorted_rows else ""
    return f"SELECT {select} FROM {table} WHERE {where}{order}"  # noqa: S608
