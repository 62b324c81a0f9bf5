"""Erasing people from the hot tier, and checking that none of their rows is left.

The rows are deleted by pseudonym from every event table in one transaction, which also adds
the counts to the request's receipt. Writers that began before the people went on the
suppression list either see the list or commit before the delete (``suppression.py``), so no
row of theirs can arrive after it. Deleting again deletes nothing: a rerun is harmless.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, Engine, text

from shared.storage.hot import suppression
from shared.storage.layout import EVENT_TABLES
from shared.storage.receipt import ErasureReceipt


def erase(engine: Engine, user_keys: Sequence[str], receipt: ErasureReceipt) -> dict[str, int]:
    """Delete the rows of ``user_keys`` from every event table; rows deleted per table."""
    suppression.wait_for_writers_in_flight(engine)
    with engine.begin() as conn:
        deleted = {
            table: conn.execute(
                text(f"DELETE FROM {table} WHERE user_key = ANY(:k)"),  # noqa: S608
                {"k": list(user_keys)},
            ).rowcount
            for table in EVENT_TABLES
        }
        receipt.add(conn, "hot", deleted)
    return deleted


def remaining(conn: Connection, user_keys: Sequence[str]) -> dict[str, int]:
    """Rows of ``user_keys`` left in each event table, and pseudonyms missing from the
    suppression list (all zero once they are erased)."""
    found = {
        f"hot.{table}": int(
            conn.execute(
                text(f"SELECT count(*) FROM {table} WHERE user_key = ANY(:k)"),  # noqa: S608
                {"k": list(user_keys)},
            ).scalar_one()
        )
        for table in EVENT_TABLES
    }
    found["suppression.missing"] = len(set(user_keys)) - len(suppression.listed(conn, user_keys))
    return found
