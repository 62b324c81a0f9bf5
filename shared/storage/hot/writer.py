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
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, Table

from shared.contract.stored_event import StoredEvent
from shared.llm.pricing import TOKEN_KINDS
from shared.storage.hot import suppression
from shared.storage.hot.errors import UNIQUE_VIOLATION, is_disconnect, sqlstate
from shared.storage.hot.tables import (
    CALL_ENVELOPE_COLUMNS,
    LLM_CALL_EVENT,
    api_calls_log,
    telemetry_events,
    written_columns,
)

_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})

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


_NEEDS_ESCAPE = re.compile(r"[\\\t\n\r]")


def _text(value: str) -> str:
    """A string in COPY's text format (most strings hold nothing to escape)."""
    return value if _NEEDS_ESCAPE.search(value) is None else value.translate(_ESCAPES)


def _json(value: Any) -> str:
    """A JSON column: orjson escapes every control character inside strings, so the only
    character COPY's text format needs escaped in its output is the backslash."""
    text = orjson.dumps(value).decode()
    return text.replace("\\", "\\\\") if "\\" in text else text


#: How each column value type is written, looked up by exact type (a row has a dozen values,
#: and a chain of isinstance tests cost more than the rest of the rendering).
_RENDERERS: dict[type, Callable[[Any], str]] = {
    str: _text,
    type(None): lambda _: "\\N",
    bool: lambda value: "t" if value else "f",
    int: int.__repr__,
    float: float.__repr__,
    datetime: datetime.isoformat,
    dict: _json,
    list: _json,
    Decimal: Decimal.__str__,
}


def _copy_field(value: Any) -> str:
    render = _RENDERERS.get(type(value))
    if render is not None:
        return render(value)
    # A subclass (an IntEnum, a str subclass): the first renderer of a type it derives from.
    for kind, render in _RENDERERS.items():
        if isinstance(value, kind):
            return render(value)
    return str(value)


def copy_text(rows: Iterable[Sequence[Any]]) -> bytes:
    """Rows in PostgreSQL's COPY text format (tab-separated, ``\\N`` for NULL, escaped)."""
    return "".join("\t".join(map(_copy_field, row)) + "\n" for row in rows).encode("utf-8")


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
    event_rows, call_rows = split_rows(events)
    return [
        (table, copy_text(rows))
        for table, rows in zip(_TABLES, (event_rows, call_rows), strict=True)
        if rows
    ]
