"""The cold tier's part of retention: archives past their expiry deleted, with their manifest.

An archive expires :data:`~shared.policy.retention.COLD_RETENTION_DAYS` after it was created
(the bucket's own rule moves it to the Archive class after a year). Its objects go first, then
its JSON manifest, then its manifest row with an audit entry in the same transaction: a crash
midway leaves the row, and the next run deletes what is left (deleting twice is harmless).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from shared.storage import audit
from shared.storage.cold.manifest import delete_manifest, expired, manifest_object_name
from shared.storage.gcs import purge
from shared.storage.retention_item import RetentionItem


def expire(engine: Engine, bucket: Any, now: datetime, dry_run: bool) -> Iterator[RetentionItem]:
    """Delete the archives past their retention at ``now``; an item per archive."""
    for manifest in expired(engine, now):
        item = RetentionItem(
            "cold",
            f"conversation archive {manifest_object_name(manifest.conversation_id)}",
            "delete",
            "past its 2-year retention",
            0,
            manifest.bytes,
            f"expired {manifest.expires_at.date().isoformat()}",
        )
        if not dry_run:
            for name in sorted({o.object for o in manifest.objects}):
                purge(bucket, name)
            purge(bucket, manifest_object_name(manifest.conversation_id))
            with engine.begin() as conn:
                delete_manifest(conn, manifest.conversation_id)
                audit.append(
                    conn,
                    "retention.cold.delete",
                    item.subject,
                    item.reason,
                    item.verified_by,
                    {"objects": len(manifest.objects), "bytes": manifest.bytes},
                )
        yield item
