"""An erasure request's receipt: the counts each tier adds as it erases, kept in PostgreSQL.

The receipt is a JSON object of ``erasure_requests``: per tier, counts of what was removed
(rows, files opened and rewritten, keys destroyed), then when the request finished. A tier
operation is handed the request's :class:`ErasureReceipt` and adds its counts in the very
transaction that did the work (:meth:`ErasureReceipt.add`), so a crash never leaves work done
and uncounted, or counted and undone; a rerun adds only what it does again. Adding is one
``UPDATE`` that sums in place: nothing is read back first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, text

#: Adds ``:counts`` (a JSON object of integers) to the receipt's ``:tier`` object, key by key.
_ADD = text(
    "UPDATE erasure_requests SET receipt = jsonb_set(receipt, ARRAY[CAST(:tier AS text)], ("
    "SELECT coalesce(jsonb_object_agg(key, coalesce((receipt -> :tier ->> key)::bigint, 0) "
    "+ coalesce((CAST(:counts AS jsonb) ->> key)::bigint, 0)), '{}'::jsonb) "
    "FROM jsonb_object_keys(coalesce(receipt -> :tier, '{}'::jsonb) || CAST(:counts AS jsonb)) "
    "AS key)) WHERE request_id = :r"
)
_SET = text(
    "UPDATE erasure_requests SET receipt = receipt || CAST(:fields AS jsonb) WHERE request_id = :r"
)


@dataclass(frozen=True)
class ErasureReceipt:
    """The receipt of one erasure request (its counts live in ``erasure_requests``)."""

    request_id: str

    def add(self, conn: Connection, tier: str, counts: Mapping[str, int]) -> None:
        """Add ``counts`` to ``tier``'s part of the receipt, in the caller's transaction."""
        if not counts:
            return
        conn.execute(
            _ADD,
            {
                "tier": tier,
                "counts": orjson.dumps({k: int(v) for k, v in counts.items()}).decode(),
                "r": self.request_id,
            },
        )

    def set(self, conn: Connection, fields: Mapping[str, Any]) -> None:
        """Set top-level fields of the receipt (its finish time and duration)."""
        conn.execute(_SET, {"fields": orjson.dumps(dict(fields)).decode(), "r": self.request_id})
