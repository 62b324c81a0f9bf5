"""The cold tier: raw transcripts, audio and model responses, encrypted per conversation.

Written by the backend (``telemetry_client.archive``). Each artifact is sealed under the
conversation's data key (``crypto.py``) and stored content-addressed: the SHA-256 of the sealed
bytes names the object (``layout.cold_object_name``), uploads are create-only, so the same
bytes are stored once and a retried call stores nothing new.

Each conversation's manifest (``manifest.py``) lists its objects and holds its wrapped data key.
An erased person's manifests lose the wrapped key and the pseudonym (``shred.py``): their
objects can never be read again, and the Standard-class ones are deleted.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine

from shared.errors import ContractViolation, TerminalError
from shared.policy.privacy import Pseudonymiser
from shared.settings import Settings
from shared.storage.cold.crypto import ArchiveTampered, new_data_key, open_sealed, seal
from shared.storage.cold.keys import KeyEncryptionKey
from shared.storage.cold.manifest import (
    ArchivedObject,
    Manifest,
    create_manifest,
    load_manifest,
    set_objects,
    write_json_manifest,
)
from shared.storage.gcs import GCS_RETRY
from shared.storage.hot import suppression
from shared.storage.layout import cold_object_name

logger = logging.getLogger(__name__)

_ARTIFACT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")

#: Called with bytes done (restore's progress bar).
Progress = Callable[[int], object]


class _OwnerErased(Exception):
    """The owner is on the suppression list: nothing of this call is stored."""


class ArchiveRefused(TerminalError):
    """The archive cannot be written: the conversation was erased, or belongs to someone else."""


class ArchiveKeyDestroyed(TerminalError):
    """The conversation's data key was destroyed by an erasure: its archive cannot be read."""


class ArchiveNotFound(TerminalError):
    """No archive exists for the conversation."""


@dataclass
class ArchiveResult:
    """What one ``archive`` call did."""

    conversation_id: str
    written: list[str] = field(default_factory=list)
    deduplicated: list[str] = field(default_factory=list)
    #: True when the owner is erased: nothing was stored.
    suppressed: bool = False


def validate_request(conversation_id: Any, artifacts: Any, max_bytes: int) -> dict[str, bytes]:
    """The artifacts as bytes, or a :class:`ContractViolation` naming what is wrong."""
    if not isinstance(conversation_id, str) or not 1 <= len(conversation_id) <= 128:
        raise ContractViolation("conversation_id must be a string of 1 to 128 characters")
    if not isinstance(artifacts, Mapping) or not artifacts:
        raise ContractViolation("artifacts must be a non-empty mapping of name to bytes or text")
    out: dict[str, bytes] = {}
    for name, value in artifacts.items():
        if (
            not isinstance(name, str)
            or not 1 <= len(name) <= 128
            or not set(name) <= _ARTIFACT_CHARS
            or name.startswith(".")
        ):
            raise ContractViolation(
                f"artifact name {str(name)[:40]!r} must be 1-128 letters, digits, '_', '.', '-'"
            )
        data = value.encode("utf-8") if isinstance(value, str) else value
        if not isinstance(data, bytes | bytearray | memoryview):
            raise ContractViolation(f"artifact {name} must be bytes or text")
        if len(data) > max_bytes:
            raise ContractViolation(
                f"artifact {name} is {len(data)} bytes, "
                f"over TELEMETRY_ARCHIVE_MAX_BYTES={max_bytes}"
            )
        out[name] = bytes(data)
    return out


class ColdArchive:
    """Writes, verifies and restores conversation archives."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        bucket: Any,
        kek: KeyEncryptionKey,
        pseudonymiser: Pseudonymiser,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.bucket = bucket
        self.kek = kek
        self.pseudonymiser = pseudonymiser

    # -- write -----------------------------------------------------------------------------
    def archive(
        self, conversation_id: str, artifacts: Mapping[str, bytes | str], user_id: str | None
    ) -> ArchiveResult:
        """Store a conversation's artifacts, encrypted; nothing for an erased person."""
        blobs = validate_request(
            conversation_id, artifacts, self.settings.telemetry_archive_max_bytes
        )
        if user_id is not None and (not isinstance(user_id, str) or not 1 <= len(user_id) <= 256):
            raise ContractViolation("user_id must be a string of 1 to 256 characters")
        result = ArchiveResult(conversation_id)
        owner = self.pseudonymiser.pseudonym(user_id) if user_id is not None else None
        every_key = self.pseudonymiser.all_pseudonyms(user_id).values() if user_id else ()
        context = conversation_id.encode("utf-8")
        try:
            with self.engine.begin() as conn:
                if suppression.listed(conn, every_key):
                    raise _OwnerErased
                manifest = self._open_manifest(conn, conversation_id, owner, context)
                # Checked again after writing: this transaction now has an id, so an erasure
                # that lists the owner later waits for it to end (suppression.py).
                if suppression.listed(conn, every_key):
                    raise _OwnerErased
        except _OwnerErased:
            result.suppressed = True
            logger.info("archive refused: the owner is erased", extra={"artifacts": len(blobs)})
            return result
        assert manifest.wrapped_key is not None
        data_key = self.kek.unwrap(manifest.wrapped_key, context)
        stored: list[ArchivedObject] = []
        for name, plaintext in blobs.items():
            sealed = seal(data_key, plaintext, context)
            stored.append(self._upload(name, sealed, result))
        self._record(conversation_id, stored, result)
        logger.info(
            "archive stored",
            extra={"written": len(result.written), "deduplicated": len(result.deduplicated)},
        )
        return result

    def _open_manifest(
        self,
        conn: Connection,
        conversation_id: str,
        owner: tuple[str, str] | None,
        context: bytes,
    ) -> Manifest:
        """The conversation's manifest, created with a new wrapped data key if missing."""
        manifest = load_manifest(conn, conversation_id)
        if manifest is None:
            wrapped = self.kek.wrap(new_data_key(), context)
            manifest = create_manifest(conn, conversation_id, owner, self.kek.name, wrapped)
        if manifest.wrapped_key is None:
            raise ArchiveRefused(f"conversation {conversation_id} was erased; nothing is archived")
        if owner is not None and manifest.owner_key not in (None, owner[1]):
            raise ArchiveRefused(f"conversation {conversation_id} belongs to another person")
        if manifest.kek != self.kek.name:
            raise ArchiveRefused(
                f"conversation {conversation_id} was wrapped by {manifest.kek}, "
                f"not by the configured {self.kek.name}"
            )
        return manifest

    def _upload(self, artifact: str, sealed: bytes, result: ArchiveResult) -> ArchivedObject:
        from google.api_core.exceptions import PreconditionFailed

        digest = hashlib.sha256(sealed).hexdigest()
        name = cold_object_name(digest)
        blob = self.bucket.blob(name)
        try:
            blob.upload_from_string(
                sealed,
                content_type="application/octet-stream",
                if_generation_match=0,
                checksum="crc32c",
                retry=GCS_RETRY,
            )
            result.written.append(artifact)
        except PreconditionFailed:
            blob = self.bucket.get_blob(name, retry=GCS_RETRY)
            result.deduplicated.append(artifact)
        return ArchivedObject(artifact, name, len(sealed), digest, str(blob.crc32c))

    def _record(
        self, conversation_id: str, stored: list[ArchivedObject], result: ArchiveResult
    ) -> None:
        """Add the objects to the manifest row, then rewrite the JSON manifest."""
        with self.engine.begin() as conn:
            manifest = load_manifest(conn, conversation_id, lock=True)
            assert manifest is not None
            if manifest.wrapped_key is None:  # erased while we uploaded: take them back
                for obj in stored:
                    if obj.artifact in result.written:
                        self.bucket.blob(obj.object).delete(retry=GCS_RETRY)
                raise ArchiveRefused(f"conversation {conversation_id} was erased meanwhile")
            listed = {(o.artifact, o.object): o for o in manifest.objects}
            for obj in stored:
                listed.setdefault((obj.artifact, obj.object), obj)
            set_objects(conn, conversation_id, list(listed.values()))
            updated = load_manifest(conn, conversation_id)
            assert updated is not None
        write_json_manifest(self.bucket, updated)

    # -- read ------------------------------------------------------------------------------
    def restore(
        self, conversation_id: str, to: Path, progress: Progress | None = None
    ) -> list[Path]:
        """Bring a conversation's artifacts back, decrypted and checked, into ``to``."""
        with self.engine.connect() as conn:
            manifest = load_manifest(conn, conversation_id)
        if manifest is None:
            raise ArchiveNotFound(f"no archive of conversation {conversation_id}")
        if manifest.wrapped_key is None:
            when = manifest.shredded_at.date().isoformat() if manifest.shredded_at else "?"
            raise ArchiveKeyDestroyed(
                f"conversation {conversation_id}: its data key was destroyed by erasure "
                f"{manifest.shredded_by} on {when}; the archive can never be restored"
            )
        context = conversation_id.encode("utf-8")
        data_key = self.kek.unwrap(manifest.wrapped_key, context)
        to.mkdir(parents=True, exist_ok=True)
        written = []
        for obj in manifest.objects:
            blob = self.bucket.get_blob(obj.object, retry=GCS_RETRY)
            if blob is None:
                raise ArchiveNotFound(f"{obj.object} ({obj.artifact}) is missing from the bucket")
            sealed = blob.download_as_bytes(retry=GCS_RETRY)
            if hashlib.sha256(sealed).hexdigest() != obj.sha256:
                raise ArchiveTampered(
                    f"{obj.object} ({obj.artifact}) differs from its manifest: tampered"
                )
            path = to / obj.artifact
            path.write_bytes(open_sealed(data_key, sealed, context, obj.object))
            written.append(path)
            if progress is not None:
                progress(obj.bytes)
        return written
