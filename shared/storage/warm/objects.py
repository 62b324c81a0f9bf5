"""Warm-tier objects in GCS: names fixed by their content's slice, create-only uploads, checks.

An object's name is fixed by (table, day, insertion range), so a rerun after a crash writes the
same name. Uploads are create-only (``if_generation_match=0``): an object already there is an
earlier attempt's, and is kept when its bytes equal the new file's (same CRC32C), or deleted
(generation-matched) and written again when they differ. Nothing unverified is ever recorded.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import google_crc32c

from shared.errors import TerminalError
from shared.storage.gcs import GCS_RETRY
from shared.storage.layout import warm_partition_prefix
from shared.storage.warm.export import DaySlice

#: Uploads go in resumable chunks of this size (a multiple of 256 KiB): memory stays bounded
#: however large a day's file is.
UPLOAD_CHUNK_BYTES = 8 * 1024 * 1024


class VerificationFailed(TerminalError):
    """A written warm file does not match what was exported; it is deleted, never recorded."""


@dataclass(frozen=True)
class StoredObject:
    """An uploaded object as GCS describes it."""

    name: str
    generation: int
    size: int
    crc32c: str


def object_name(piece: DaySlice) -> str:
    """``analytics/<table>/event_date=YYYY-MM-DD/<table>-<yyyymmdd>-<lo>-<hi>.parquet``."""
    prefix = warm_partition_prefix(piece.table, piece.day)
    return f"{prefix}{piece.table}-{piece.day:%Y%m%d}-{piece.seq_lo}-{piece.seq_hi}.parquet"


def file_crc32c(path: Path) -> str:
    """The CRC32C of a file as GCS writes it (base64 of the big-endian 4 bytes)."""
    checksum = google_crc32c.Checksum()  # type: ignore[no-untyped-call]
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            checksum.update(chunk)  # type: ignore[no-untyped-call]
    digest: bytes = checksum.digest()  # type: ignore[no-untyped-call]
    return base64.b64encode(digest).decode("ascii")


def upload_create_only(bucket: Any, name: str, path: Path) -> StoredObject:
    """Upload ``path`` as ``name`` unless the same bytes are there already; the stored object."""
    from google.api_core.exceptions import PreconditionFailed

    local_crc = file_crc32c(path)
    blob = bucket.blob(name, chunk_size=UPLOAD_CHUNK_BYTES)
    try:
        blob.upload_from_filename(
            str(path), if_generation_match=0, checksum="crc32c", retry=GCS_RETRY
        )
    except PreconditionFailed:
        existing = bucket.get_blob(name, retry=GCS_RETRY)
        if existing is not None and existing.crc32c != local_crc:
            existing.delete(if_generation_match=existing.generation, retry=GCS_RETRY)
            blob = bucket.blob(name, chunk_size=UPLOAD_CHUNK_BYTES)
            blob.upload_from_filename(
                str(path), if_generation_match=0, checksum="crc32c", retry=GCS_RETRY
            )
    stored = bucket.get_blob(name, retry=GCS_RETRY)
    if stored is None:
        raise VerificationFailed(f"{name} is missing right after its upload")
    result = StoredObject(name, int(stored.generation), int(stored.size), str(stored.crc32c))
    if result.crc32c != local_crc:
        stored.delete(if_generation_match=stored.generation, retry=GCS_RETRY)
        raise VerificationFailed(f"{name}: the stored CRC32C differs from the file written")
    return result


def delete_object(bucket: Any, stored: StoredObject) -> None:
    """Delete exactly this generation of an object (never a newer one)."""
    bucket.blob(stored.name).delete(if_generation_match=stored.generation, retry=GCS_RETRY)
