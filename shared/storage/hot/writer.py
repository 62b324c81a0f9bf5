"""Writing stored-form events into the hot tier, idempotently and fast.

Rows go to ``api_calls_log`` (``llm.call``) or ``telemetry_events`` (everything else). Each
batch is one transaction. Rows are streamed with ``COPY … FROM STDIN`` (pg8000's fastest
path) straight into the tables; when some of them are already stored, the primary key refuses
the COPY and the batch is written again through temporary staging tables and ``INSERT …
SELECT … ON CONFLICT DO NOTHING``, so a redelivered batch, or an event stored twice, leaves one
row. The tables' suppression trigger drops the events of erased people in the same statement
(``suppression.py``); its NOTICE says how many, and they are counted as suppressed.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from sqlalchemy import Connection, Engine, Table

from shared.contract.stored_event import StoredEvent
from shared.llm.pricing import TOKEN_KINDS
from shared.storage.hot import suppression
from shared.storage.hot.copy_format import LineRenderer
from shared.storage.hot.errors import UNIQUE_VIOLATION, is_disconnect, sqlstate
from shared.storage.hot.tables import (
    CALL_ENVELOPE_COLUMNS,
    LLM_CALL_EVENT,
    api_calls_log,
    telemetry_events,
    written_columns,
)

EVENT_COLUMNS = written_columns(telemetry_events)
CALL_COLUMNS = written_columns(api_calls_log)
#: llm.call props copied into api_calls_log columns of the same name.
CALL_PROP_COLUMNS = tuple(c for c in CALL_COLUMNS if c not in CALL_ENVELOPE_COLUMNS)
_CALL_DEFAULTS: dict[str, Any] = {
    **{name: 0 for name in TOKEN_KINDS},
    "retry_count": 0,
    "fallback_used": False,
    "streamed": False,
}


@dataclass(frozen=True)
class WriteResult:
    """Rows offered, rows actually inserted, and rows dropped because their person was erased
    (the rest were already stored)."""

    offered: int
    inserted: int
    suppressed: int = 0


#: Where each column of ``api_calls_log`` filled from the envelope takes its value.
CALL_ATTRIBUTES: dict[str, str] = {
    name: {"call_id": "event_id", "ts": "event_ts"}.get(name, name)
    for name in CALL_ENVELOPE_COLUMNS
}
_event_values = attrgetter(*EVENT_COLUMNS)


def event_row(event: StoredEvent) -> tuple[Any, ...]:
    """The ``telemetry_events`` row of an event, in column order."""
    values: tuple[Any, ...] = _event_values(event)
    return values


def call_row(event: StoredEvent) -> tuple[Any, ...]:
    """The ``api_calls_log`` row of an ``llm.call`` event, in column order."""
    props = event.props
    values = []
    for column in CALL_COLUMNS:
        if column in CALL_ATTRIBUTES:
            values.append(getattr(event, CALL_ATTRIBUTES[column]))
        else:
            value = props.get(column)
            values.append(_CALL_DEFAULTS.get(column) if value is None else value)
    return tuple(values)


#: Each table's COPY line of an event (see ``copy_format``).
_LINES = {
    telemetry_events.name: LineRenderer(
        telemetry_events, EVENT_COLUMNS, {c: c for c in EVENT_COLUMNS}, {}, event_row
    ),
    api_calls_log.name: LineRenderer(
        api_calls_log, CALL_COLUMNS, CALL_ATTRIBUTES, _CALL_DEFAULTS, call_row
    ),
}


_STAGED = "telemetry_staging_ready"
_TABLES = (telemetry_events, api_calls_log)


def _stage(table: Table) -> str:
    return f"stage_{table.name}"


def _ensure_staging(conn: Connection) -> None:
    """Create this connection's temporary staging tables once (they live with the session)."""
    info = conn.connection.info
    if info.get(_STAGED):
        return
    for table in _TABLES:
        conn.exec_driver_sql(
            f"CREATE TEMP TABLE IF NOT EXISTS {_stage(table)} "
            f"(LIKE {table.name} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
    info[_STAGED] = True


def copy_into(conn: Connection, target: str, columns: Sequence[str], data: bytes) -> None:
    """COPY ``data`` (from :func:`copy_text`) into ``target``'s ``columns`` on ``conn``."""
    cursor: Any = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:  # pg8000 streams COPY data from a file-like ``stream``
        cursor.execute(f"COPY {target} ({', '.join(columns)}) FROM STDIN", stream=io.BytesIO(data))
    except Exception as exc:
        # This raw cursor bypasses SQLAlchemy's disconnect handling: a dead connection must be
        # invalidated here, or it goes back to the pool and fails every redelivery.
        if is_disconnect(exc):
            conn.invalidate(exc)
        raise
    finally:
        with contextlib.suppress(Exception):
            cursor.close()


def _insert_staged(table: Table) -> str:
    columns = ", ".join(written_columns(table))
    keys = ", ".join(c.name for c in table.primary_key.columns)
    return (
        f"INSERT INTO {table.name} ({columns}) SELECT {columns} FROM {_stage(table)} "  # noqa: S608
        f"ON CONFLICT ({keys}) DO NOTHING RETURNING 1"
    )


def _move_staged(conn: Connection, tables: Sequence[Table]) -> int:
    """Move the staged rows of ``tables`` into place in one round trip; rows inserted."""
    parts = [f"m{i} AS ({_insert_staged(t)})" for i, t in enumerate(tables)]
    counts = " + ".join(f"(SELECT count(*) FROM m{i})" for i in range(len(tables)))  # noqa: S608
    return int(conn.exec_driver_sql(f"WITH {', '.join(parts)} SELECT {counts}").scalar() or 0)


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


def _is_duplicate(error: BaseException) -> bool:
    return sqlstate(error) == UNIQUE_VIOLATION


def write_events(engine: Engine, events: Sequence[StoredEvent]) -> WriteResult:
    """Store a batch in one transaction; events already stored are left as they are, and the
    events of erased people are dropped (by the tables' suppression trigger).

    First delivery (the common case): one ``COPY`` straight into each table and the commit,
    as cheap as a plain COPY. If any event is already stored (a redelivery, a duplicate
    storm), PostgreSQL refuses the COPY with a unique violation; the transaction is rolled
    back and the batch goes through the staging tables with ``INSERT … ON CONFLICT DO
    NOTHING``, which stores exactly the missing events.
    """
    rendered = _render(events)
    if not rendered:
        return WriteResult(offered=0, inserted=0)
    try:
        with engine.begin() as conn:
            notices = _notices(conn)
            for table, data in rendered:
                copy_into(conn, table.name, written_columns(table), data)
            dropped = suppression.suppressed_in_notices(notices)
        return WriteResult(len(events), len(events) - dropped, dropped)
    except Exception as exc:
        if not _is_duplicate(exc):
            raise
    with engine.begin() as conn:
        try:
            notices = _notices(conn)
            _ensure_staging(conn)
            for table, data in rendered:
                copy_into(conn, _stage(table), written_columns(table), data)
            inserted = _move_staged(conn, [t for t, _ in rendered])
            dropped = suppression.suppressed_in_notices(notices)
        except BaseException:
            # A failed transaction also rolls back staging tables created in it.
            conn.connection.info.pop(_STAGED, None)
            raise
    return WriteResult(len(events), inserted - dropped, dropped)


def _notices(conn: Connection) -> Any:
    """The connection's notice queue (pg8000's), emptied: what this transaction adds to it."""
    notices = getattr(conn.connection.dbapi_connection, "notices", None)
    if notices is None:
        return []
    notices.clear()
    return notices


def _render(events: Sequence[StoredEvent]) -> list[tuple[Table, bytes]]:
    """Each table's rows of a batch in COPY text form (tables without rows left out)."""
    event_line, call_line = _LINES[telemetry_events.name], _LINES[api_calls_log.name]
    event_lines: list[str] = []
    call_lines: list[str] = []
    for event in events:
        if event.name == LLM_CALL_EVENT:
            call_lines.append(call_line(event))
        else:
            event_lines.append(event_line(event))
    return [
        (table, ("\n".join(lines) + "\n").encode("utf-8"))
        for table, lines in zip(_TABLES, (event_lines, call_lines), strict=True)
        if lines
    ]
