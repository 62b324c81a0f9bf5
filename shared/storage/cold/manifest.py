"""The cold tier's catalog: one manifest per archived conversation, and all SQL against it.

A manifest is a row of ``storage_manifests`` and a JSON object under ``archives/manifests/``
beside the objects it lists: object names, sizes, SHA-256, GCS CRC32C, the retention class,
the wrapped data key and the owner's pseudonym. It never holds a raw identifier. Writing the
archive (``archive.py``), shredding an erased person's keys (``shred.py``), verifying
(``verify.py``), retention and erasure all read and change manifests through this module; no
other module writes SQL against the table.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, text

from shared.policy.retention import COLD_RETENTION_DAYS
from shared.storage.gcs import GCS_RETRY, purge
from shared.storage.layout import COLD_PREFIX

#: The retention class every archive gets: Archive storage class after 12 months, gone at 2 years.
RETENTION_CLASS = "cold-2y"
MANIFEST_PREFIX = f"{COLD_PREFIX}manifests/"


@dataclass(frozen=True)
class ArchivedObject:
    """One stored artifact, as its manifest lists it."""

    artifact: str
    object: str
    bytes: int
    sha256: str
    crc32c: str

    def to_json(self) -> dict[str, Any]:
        """The manifest's form."""
        return {
            "artifact": self.artifact,
            "object": self.object,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "crc32c": self.crc32c,
        }


@dataclass(frozen=True)
class Manifest:
    """A conversation's manifest row."""

    conversation_id: str
    owner_key: str | None
    key_id: str | None
    kek: str
    wrapped_key: bytes | None
    retention_class: str
    objects: tuple[ArchivedObject, ...]
    bytes: int
    created_at: datetime
    expires_at: datetime
    shredded_at: datetime | None
    shredded_by: str | None

    @classmethod
    def from_row(cls, row: Any) -> Manifest:
        """From a ``storage_manifests`` row."""
        listed = row.objects if isinstance(row.objects, list) else orjson.loads(row.objects)
        return cls(
            row.conversation_id,
            row.owner_key,
            row.key_id,
            row.kek,
            bytes(row.wrapped_key) if row.wrapped_key is not None else None,
            row.retention_class,
            tuple(ArchivedObject(**o) for o in listed),
            int(row.bytes),
            row.created_at,
            row.expires_at,
            row.shredded_at,
            row.shredded_by,
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON manifest stored beside the objects (the wrapped key in hex, if any)."""
        return {
            "conversation_id": self.conversation_id,
            "owner_key": self.owner_key,
            "key_id": self.key_id,
            "kek": self.kek,
            "wrapped_key": self.wrapped_key.hex() if self.wrapped_key is not None else None,
            "retention_class": self.retention_class,
            "objects": [o.to_json() for o in self.objects],
            "bytes": self.bytes,
            "created_at": self.created_at.astimezone(UTC).isoformat(),
            "expires_at": self.expires_at.astimezone(UTC).isoformat(),
            "shredded_at": self.shredded_at.astimezone(UTC).isoformat()
            if self.shredded_at
            else None,
            "shredded_by": self.shredded_by,
        }


def manifest_object_name(conversation_id: str) -> str:
    """Where a conversation's JSON manifest lives (named by a hash: any id is a safe name)."""
    digest = hashlib.sha256(conversation_id.encode("utf-8")).hexdigest()[:32]
    return f"{MANIFEST_PREFIX}{digest}.json"


_COLUMNS = (
    "conversation_id, owner_key, key_id, kek, wrapped_key, retention_class, objects, bytes, "
    "created_at, expires_at, shredded_at, shredded_by"
)


def load_manifest(conn: Connection, conversation_id: str, lock: bool = False) -> Manifest | None:
    """The manifest row of a conversation (``FOR UPDATE`` with ``lock``), or None."""
    row = conn.execute(
        text(
            f"SELECT {_COLUMNS} FROM storage_manifests WHERE conversation_id = :c"  # noqa: S608
            + (" FOR UPDATE" if lock else "")
        ),
        {"c": conversation_id},
    ).first()
    return Manifest.from_row(row) if row is not None else None


def iter_manifests(
    engine: Engine,
    where: str = "true",
    params: Mapping[str, Any] | None = None,
    batch: int = 500,
) -> Iterator[Manifest]:
    """Every manifest matching ``where`` (our own SQL, bound ``params``), in pages."""
    after = ""
    while True:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    f"SELECT {_COLUMNS} FROM storage_manifests WHERE conversation_id > :after "  # noqa: S608
                    f"AND {where} ORDER BY conversation_id LIMIT :n"
                ),
                {**(params or {}), "after": after, "n": batch},
            ).all()
        if not rows:
            return
        for row in rows:
            yield Manifest.from_row(row)
        after = rows[-1].conversation_id


def write_json_manifest(bucket: Any, manifest: Manifest) -> None:
    """Store the JSON manifest, and remove its older generations (they may hold a wrapped key
    that was since destroyed)."""
    name = manifest_object_name(manifest.conversation_id)
    blob = bucket.blob(name)
    blob.upload_from_string(
        orjson.dumps(manifest.to_json(), option=orjson.OPT_INDENT_2),
        content_type="application/json",
        retry=GCS_RETRY,
    )
    purge(bucket, name, keep=int(blob.generation))


def create_manifest(
    conn: Connection,
    conversation_id: str,
    owner: tuple[str, str] | None,
    kek_name: str,
    wrapped_key: bytes,
) -> Manifest:
    """The conversation's manifest, created with ``wrapped_key`` when there is none yet (a
    concurrent call's manifest wins: the row is created once)."""
    now = datetime.now(UTC)
    conn.execute(
        text(
            "INSERT INTO storage_manifests (conversation_id, owner_key, key_id, kek, "
            "wrapped_key, retention_class, created_at, updated_at, expires_at) "
            "VALUES (:c, :o, :k, :kek, :w, :r, :now, :now, :exp) "
            "ON CONFLICT (conversation_id) DO NOTHING"
        ),
        {
            "c": conversation_id,
            "o": owner[1] if owner else None,
            "k": owner[0] if owner else None,
            "kek": kek_name,
            "w": wrapped_key,
            "r": RETENTION_CLASS,
            "now": now,
            "exp": now + timedelta(days=COLD_RETENTION_DAYS),
        },
    )
    manifest = load_manifest(conn, conversation_id)  # ours, or a concurrent call's
    assert manifest is not None
    return manifest


def set_objects(conn: Connection, conversation_id: str, objects: Sequence[ArchivedObject]) -> None:
    """List ``objects`` in the manifest (its size counts each stored object once)."""
    unique = {o.object: o.bytes for o in objects}
    conn.execute(
        text(
            "UPDATE storage_manifests SET objects = CAST(:o AS jsonb), bytes = :b, "
            "updated_at = now() WHERE conversation_id = :c"
        ),
        {
            "o": orjson.dumps([o.to_json() for o in objects]).decode(),
            "b": sum(unique.values()),
            "c": conversation_id,
        },
    )


def destroy_keys(conn: Connection, request_id: str, user_keys: Sequence[str]) -> int:
    """Destroy the wrapped data keys (and the pseudonym) of the people's manifests; how many."""
    return int(
        conn.execute(
            text(
                "UPDATE storage_manifests SET wrapped_key = NULL, owner_key = NULL, "
                "key_id = NULL, shredded_at = now(), shredded_by = :r, updated_at = now() "
                "WHERE owner_key = ANY(:k)"
            ),
            {"r": request_id, "k": list(user_keys)},
        ).rowcount
    )


def count_owned(conn: Connection, user_keys: Sequence[str]) -> int:
    """Manifests still owned by any of these pseudonyms (zero once their keys are shredded)."""
    return int(
        conn.execute(
            text("SELECT count(*) FROM storage_manifests WHERE owner_key = ANY(:k)"),
            {"k": list(user_keys)},
        ).scalar_one()
    )


def delete_manifest(conn: Connection, conversation_id: str) -> None:
    """Forget a conversation's manifest row (its objects and JSON manifest are gone first)."""
    conn.execute(
        text("DELETE FROM storage_manifests WHERE conversation_id = :c"),
        {"c": conversation_id},
    )


def expired(engine: Engine, now: datetime) -> Iterator[Manifest]:
    """Manifests past their retention at ``now``."""
    return iter_manifests(engine, "expires_at < :now", {"now": now})


def shredded_by(engine: Engine, request_id: str) -> Iterator[Manifest]:
    """Manifests whose keys an erasure request destroyed."""
    return iter_manifests(engine, "shredded_by = :r", {"r": request_id})
