"""Crypto-shredding an erased person's archives.

Their conversations' wrapped data keys are destroyed in PostgreSQL first (one transaction, with
the owner's pseudonym): from that commit on, no copy of a data key exists anywhere the key
encryption key could unwrap, so every object of those conversations is unreadable at once. Then,
per conversation, the JSON manifest is rewritten without key or pseudonym (its older generations
deleted), and the Standard-class objects are deleted. Archive-class objects stay until their
lifecycle age: deleting them early would cost the 365-day minimum storage charge, and they can
no longer be read. Every step is idempotent; a rerun finishes what a crash left.
:func:`remaining` checks afterwards that no key is readable and no Standard-class object is
left.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import orjson
from sqlalchemy import Engine

from shared.storage.cold.manifest import (
    count_owned,
    destroy_keys,
    manifest_object_name,
    shredded_by,
    write_json_manifest,
)
from shared.storage.gcs import GCS_RETRY, purge
from shared.storage.receipt import ErasureReceipt

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


def erase(
    engine: Engine, bucket: Any, user_keys: Sequence[str], receipt: ErasureReceipt
) -> ColdCounts:
    """Shred the people's archives: destroy their data keys (one transaction, counted on the
    receipt), then rewrite each conversation's JSON manifest and delete its Standard-class
    objects (counted as each conversation is finished)."""
    with engine.begin() as conn:
        destroyed = destroy_keys(conn, receipt.request_id, user_keys)
        receipt.add(conn, "cold", {"keys_destroyed": destroyed})
    counts = ColdCounts(keys_destroyed=destroyed)
    for manifest in shredded_by(engine, receipt.request_id):
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
            receipt.add(conn, "cold", done.to_json())
        for key, value in done.to_json().items():
            setattr(counts, key, getattr(counts, key) + value)
    logger.info("erasure cold step", extra=counts.to_json())
    return counts


def remaining(
    engine: Engine, bucket: Any, request_id: str, user_keys: Sequence[str]
) -> dict[str, int]:
    """What the people still have in the cold tier (all zero once shredded): manifests still
    owned by them, readable keys of the request's conversations (in the table or the JSON
    manifest), and their Standard-class objects."""
    with engine.connect() as conn:
        owned = count_owned(conn, user_keys)
    keys_left = objects_left = 0
    for manifest in shredded_by(engine, request_id):
        blob = bucket.get_blob(manifest_object_name(manifest.conversation_id))
        stored = orjson.loads(blob.download_as_bytes()) if blob is not None else {}
        if manifest.wrapped_key is not None or stored.get("wrapped_key") or stored.get("owner_key"):
            keys_left += 1
        for obj in {o.object for o in manifest.objects}:
            existing = bucket.get_blob(obj, retry=GCS_RETRY)
            if existing is not None and existing.storage_class not in KEPT_CLASSES:
                objects_left += 1
    return {
        "cold.manifests_owned": owned,
        "cold.keys_readable": keys_left,
        "cold.standard_objects": objects_left,
    }
