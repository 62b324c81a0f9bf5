"""The erasure suppression list: pseudonyms of erased people, which no tier may store again.

An erasure puts the person's pseudonyms (one under every key ever listed) on the list before it
deletes anything. From then on:

* PostgreSQL itself drops their rows from every INSERT or COPY into the event tables (a
  statement trigger, migration 0004), and says how many in a NOTICE the sink counts
  (:func:`suppressed_in_notices`);
* the snapshot exports none of their rows (:func:`not_suppressed_sql`);
* the cold archive refuses their artifacts (:func:`listed`).

A writer that began before the listing and commits after it could still store a row the
erasure's delete does not see. So after listing, the erasure waits for every write transaction
of this database that was open at that moment (:func:`wait_for_writers_in_flight`): each either
ran the trigger after the listing (and dropped the row itself), or commits before the erasure
deletes (and its row is deleted). An event published before the erasure and delivered after it
is never stored.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, MutableSequence
from typing import Any

from sqlalchemy import Connection, Engine, text

from shared.errors import ServiceUnavailable

#: How long an erasure waits for write transactions that were open when it listed the people.
WRITERS_WAIT_S = 120.0
_NOTICE = re.compile(r"^telemetry: (\d+) suppressed$")


def listed(conn: Connection, user_keys: Iterable[str | None]) -> set[str]:
    """Which of ``user_keys`` are on the list (seen by this statement's snapshot)."""
    keys = sorted({k for k in user_keys if k})
    if not keys:
        return set()
    rows = conn.execute(
        text("SELECT user_key FROM erasure_suppressions WHERE user_key = ANY(:keys)"),
        {"keys": keys},
    )
    return {str(r[0]) for r in rows}


def suppress(conn: Connection, request_id: str, user_keys: Iterable[str]) -> int:
    """Add pseudonyms to the list; the number newly added."""
    added = 0
    for key in sorted(set(user_keys)):
        added += conn.execute(
            text(
                "INSERT INTO erasure_suppressions (user_key, request_id) VALUES (:k, :r) "
                "ON CONFLICT (user_key) DO NOTHING"
            ),
            {"k": key, "r": request_id},
        ).rowcount
    return added


def wait_for_writers_in_flight(engine: Engine, timeout_s: float = WRITERS_WAIT_S) -> int:
    """Wait until every write transaction of this database open now has ended; how many there
    were. :class:`ServiceUnavailable` (the erasure resumes later) if one outlives ``timeout_s``."""
    query = text(
        "SELECT backend_xid::text FROM pg_stat_activity WHERE datname = current_database() "
        "AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()"
    )
    with engine.connect() as conn:
        open_now = {str(r[0]) for r in conn.execute(query)}
    deadline = time.monotonic() + timeout_s
    waiting = set(open_now)
    while waiting:
        with engine.connect() as conn:
            waiting &= {str(r[0]) for r in conn.execute(query)}
        if not waiting:
            break
        if time.monotonic() >= deadline:
            raise ServiceUnavailable(
                f"{len(waiting)} write transaction(s) older than the erasure are still open "
                f"after {timeout_s:.0f} s; the erasure resumes on its next run",
                "postgresql",
            )
        time.sleep(0.05)
    return len(open_now)


def suppressed_in_notices(notices: MutableSequence[Any]) -> int:
    """Rows the suppression trigger dropped, from a pg8000 connection's notices (consumed)."""
    dropped = 0
    while notices:
        notice = notices.pop()
        message = notice.get(b"M", b"") if isinstance(notice, dict) else b""
        match = _NOTICE.match(message.decode("utf-8", "replace"))
        if match:
            dropped += int(match.group(1))
    return dropped


def not_suppressed_sql(table: str) -> str:
    """A PostgreSQL filter keeping the rows of ``table`` whose person is not on the list."""
    return (  # table names come from EVENT_TABLES, never from input
        f"({table}.user_key IS NULL OR NOT EXISTS (SELECT 1 FROM erasure_suppressions s "  # noqa: S608
        f"WHERE s.user_key = {table}.user_key))"
    )
