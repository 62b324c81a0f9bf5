"""The erasure suppression list: pseudonyms of erased people, which no tier may store again.

An erasure puts the person's pseudonyms (one under every key ever listed) on the list before it
deletes anything. The sink drops their events from every batch, and the snapshot exports none of
their rows, so an event published before the erasure and delivered after it is never stored.

The race between a sink batch and the erasure that lists its person is closed by one advisory
lock: each sink transaction holds it shared while it checks the list and writes; the erasure
takes it exclusively to add to the list. So every sink transaction either finished before the
listing (and the erasure, which deletes after it, removes its rows) or checks the list after it
(and drops the person's events).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, text

_LOCK = {"k": "telemetry-erasure-suppression"}


def check_shared(conn: Connection, user_keys: Iterable[str | None]) -> set[str]:
    """In a writing transaction: hold the list's lock shared, and return which keys are on it."""
    keys = sorted({k for k in user_keys if k})
    conn.execute(text("SELECT pg_advisory_xact_lock_shared(hashtext(:k))"), _LOCK)
    if not keys:
        return set()
    rows = conn.execute(
        text("SELECT user_key FROM erasure_suppressions WHERE user_key = ANY(:keys)"),
        {"keys": keys},
    )
    return {str(r[0]) for r in rows}


def suppress(conn: Connection, request_id: str, user_keys: Iterable[str]) -> int:
    """Add pseudonyms to the list (waits for sink transactions in flight); the number added."""
    conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), _LOCK)
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


def not_suppressed_sql(table: str) -> str:
    """A PostgreSQL filter keeping the rows of ``table`` whose person is not on the list."""
    return (  # table names come from EVENT_TABLES, never from input
        f"({table}.user_key IS NULL OR NOT EXISTS (SELECT 1 FROM erasure_suppressions s "  # noqa: S608
        f"WHERE s.user_key = {table}.user_key))"
    )
