"""Writing stored-form events into the hot tier, idempotently and fast.

Rows go to ``api_calls_log`` (``llm.call``) or ``telemetry_events`` (everything else). Each
batch is one transaction: the rows are streamed with ``COPY … FROM STDIN`` into a temporary
staging table (pg8000's fastest path), then moved with ``INSERT … SELECT … ON CONFLICT DO
NOTHING`` on the primary key, so a redelivered batch, or an event stored twice, leaves one row.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, Table

from shared.records import StoredEvent
from shared.tables import LLM_CALL_EVENT, TOKEN_COLUMNS, api_calls_log, telemetry_events

_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})

EVENT_COLUMNS = tuple(telemetry_events.columns.keys())
CALL_COLUMNS = tuple(api_calls_log.columns.keys())
#: llm.call props copied into api_calls_log columns of the same name.
CALL_PROP_COLUMNS = tuple(
    c
    for c in CALL_COLUMNS
    if c
    not in {
        "call_id",
        "ts",
        "received_at",
        "session_id",
        "conversation_id",
        "user_key",
        "key_id",
        "app_version",
        "sample_rate",
    }
)
_CALL_DEFAULTS: dict[str, Any] = {
    **{name: 0 for name in TOKEN_COLUMNS},
    "retry_count": 0,
    "fallback_used": False,
    "streamed": False,
}


@dataclass(frozen=True)
class WriteResult:
    """Rows offered and rows actually inserted (the rest were already stored)."""

    offered: int
    inserted: int


def event_row(event: StoredEvent) -> tuple[Any, ...]:
    """The ``telemetry_events`` row of an event, in column order."""
    return (
        event.event_id,
        event.name,
        event.version,
        event.category,
        event.event_ts,
        event.received_at,
        event.session_id,
        event.user_key,
        event.key_id,
        event.conversation_id,
        event.app_version,
        event.props,
        event.sample_rate,
    )


def call_row(event: StoredEvent) -> tuple[Any, ...]:
    """The ``api_calls_log`` row of an ``llm.call`` event, in column order."""
    props = event.props
    values: dict[str, Any] = {
        "call_id": event.event_id,
        "ts": event.event_ts,
        "received_at": event.received_at,
        "session_id": event.session_id,
        "conversation_id": event.conversation_id,
        "user_key": event.user_key,
        "key_id": event.key_id,
        "app_version": event.app_version,
        "sample_rate": event.sample_rate,
    }
    for column in CALL_PROP_COLUMNS:
        value = props.get(column)
        values[column] = _CALL_DEFAULTS.get(column) if value is None else value
    return tuple(values[c] for c in CALL_COLUMNS)


def _copy_field(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, str):
        return value.translate(_ESCAPES)
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (dict, list)):
        return orjson.dumps(value).decode().translate(_ESCAPES)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, Decimal):
        return str(value)
    return str(value)


def copy_text(rows: Iterable[Sequence[Any]]) -> bytes:
    """Rows in PostgreSQL's COPY text format (tab-separated, ``\\N`` for NULL, escaped)."""
    return "".join("\t".join(map(_copy_field, row)) + "\n" for row in rows).encode("utf-8")


def _stage(table: Table) -> str:
    return f"stage_{table.name}"


def _copy_into(conn: Connection, target: str, columns: Sequence[str], data: bytes) -> None:
    cursor: Any = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:  # pg8000 streams COPY data from a file-like ``stream``
        cursor.execute(f"COPY {target} ({', '.join(columns)}) FROM STDIN", stream=io.BytesIO(data))
    finally:
        cursor.close()


def _write_table(conn: Connection, table: Table, rows: list[tuple[Any, ...]]) -> int:
    if not rows:
        return 0
    columns = tuple(table.columns.keys())
    stage = _stage(table)
    conn.exec_driver_sql(
        f"CREATE TEMP TABLE IF NOT EXISTS {stage} "
        f"(LIKE {table.name} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
    )
    _copy_into(conn, stage, columns, copy_text(rows))
    keys = ", ".join(c.name for c in table.primary_key.columns)
    cols = ", ".join(columns)
    result = conn.exec_driver_sql(
        f"INSERT INTO {table.name} ({cols}) SELECT {cols} FROM {stage} "  # noqa: S608 - fixed names
        f"ON CONFLICT ({keys}) DO NOTHING"
    )
    return int(result.rowcount)


def split_rows(
    events: Iterable[StoredEvent],
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """``(telemetry_events rows, api_calls_log rows)`` of a batch."""
    event_rows: list[tuple[Any, ...]] = []
    call_rows: list[tuple[Any, ...]] = []
    for event in events:
        if event.name == LLM_CALL_EVENT:
            call_rows.append(call_row(event))
        else:
            event_rows.append(event_row(event))
    return event_rows, call_rows


def write_events(engine: Engine, events: Sequence[StoredEvent]) -> WriteResult:
    """Store a batch in one transaction; events already stored are left as they are."""
    event_rows, call_rows = split_rows(events)
    with engine.begin() as conn:
        inserted = _write_table(conn, telemetry_events, event_rows)
        inserted += _write_table(conn, api_calls_log, call_rows)
    return WriteResult(offered=len(events), inserted=inserted)
