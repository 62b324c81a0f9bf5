"""Crypto-shredding an erased person's archives.

Their conversations' wrapped data keys are destroyed in PostgreSQL first (one transaction, with
the owner's pseudonym): from that commit on, no copy of a data key exists anywhere the key
encryption key could unwrap, so every object of those conversations is unreadable at once. Then,
per conversation, the JSON manifest is rewritten without key or pseudonym (its older generations
deleted), and the Standard-class objects are deleted. Archive-class objects stay until their
lifecycle age: deleting them early would cost the 365-day minimum storage charge, and they can
no longer be read. Every step is idempotent; a rerun finishes what a crash left.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Connection, Engine, text

from shared.storage.cold.archive import iter_manifests, write_json_manifest
from shared.storage.gcs import GCS_RETRY, purge

logger = logging.getLogger(__name__)

#: Storage classes whose objects are kept (unreadable) rather than deleted early.
KEPT_CLASSES = frozenset({"ARCHIVE"})


@dataclass
class ColdCounts:
    """What the cold step did."""

    keys_destroyed: int = 0
    objects_deleted: int = 0
    objects_unreadable: int = 0
    manifests_rewritten: int = 0

    def to_json(self) -> dict[str, int]:
        """The receipt's form."""
        return asdict(self)


def destroy_keys(conn: Connection, request_id: str, user_keys: Sequence[str]) -> int:
    """Destroy the wrapped data keys (and the pseudonym) of the people's manifests."""
    return conn.execute(
        text(
            "UPDATE storage_manifests SET wrapped_key = NULL, owner_key = NULL, key_id = NULL, "
            "shredded_at = now(), shredded_by = :r, updated_at = now() "
            "WHERE owner_key = ANY(:k)"
        ),
        {"r": request_id, "k": list(user_keys)},
    ).rowcount


def finish_shredding(
    engine: Engine,
    bucket: Any,
    request_id: str,
    count: Callable[[Connection, dict[str, int]], None],
) -> ColdCounts:
    """Rewrite the JSON manifests and delete the Standard-class objects of a request's
    shredded conversations."""
    counts = ColdCounts()
    for manifest in iter_manifests(engine, "shredded_by = :r", {"r": request_id}):
        write_json_manifest(bucket, manifest)
        done = ColdCounts(manifests_rewritten=1)
        for name in sorted({o.object for o in manifest.objects}):
            blob = bucket.get_blob(name, retry=GCS_RETRY)
            if blob is None:
                continue
            if blob.storage_class in KEPT_CLASSES:
                done.objects_unreadable += 1
                continue
            purge(bucket, name)
            done.objects_deleted += 1
        with engine.begin() as conn:  # counted per conversation, as it is finished
            count(conn, {k: v for k, v in done.to_json().items() if k != "keys_destroyed"})
        for key, value in done.to_json().items():
            setattr(counts, key, getattr(counts, key) + value)
    logger.info("erasure cold step", extra=counts.to_json())
    return counts
