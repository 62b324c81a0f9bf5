"""``telemetry archive verify``: every cold object checked against its manifest.

For each manifest: the JSON manifest in the bucket agrees with the row (objects, wrapped key),
and each listed object is there with the manifest's size and CRC32C (GCS computes the CRC32C of
what it stores, so a changed object shows without reading it). With ``deep``, each object is
also read and its SHA-256 compared. An erased conversation's Standard-class objects are gone and
its Archive-class ones stay, unreadable: both are expected. Problems name the object.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Engine

from shared.storage.cold.manifest import Manifest, iter_manifests, manifest_object_name
from shared.storage.gcs import GCS_RETRY

#: Called once per manifest checked (the CLI's progress bar).
Progress = Callable[[int], object]


@dataclass(frozen=True)
class ArchiveProblem:
    """One thing wrong with the cold tier."""

    conversation_id: str
    object: str
    problem: str

    def __str__(self) -> str:
        return f"{self.object}: {self.problem}"


@dataclass
class VerifyReport:
    """What ``verify`` checked and found."""

    manifests: int = 0
    objects: int = 0
    problems: list[ArchiveProblem] = field(default_factory=list)


def verify_archives(
    engine: Engine, bucket: Any, deep: bool = False, progress: Progress | None = None
) -> VerifyReport:
    """Check every manifest and object; the report lists each problem by object name."""
    report = VerifyReport()
    for manifest in iter_manifests(engine):
        report.manifests += 1
        report.problems.extend(_check_json(bucket, manifest))
        for obj in {o.object: o for o in manifest.objects}.values():
            report.objects += 1
            blob = bucket.get_blob(obj.object, retry=GCS_RETRY)
            shredded = manifest.wrapped_key is None
            if blob is None:
                if not shredded:
                    report.problems.append(
                        ArchiveProblem(manifest.conversation_id, obj.object, "missing")
                    )
                continue
            problem = None
            if int(blob.size) != obj.bytes or str(blob.crc32c) != obj.crc32c:
                problem = (
                    f"changed: {blob.size} bytes, crc32c {blob.crc32c}; "
                    f"the manifest says {obj.bytes} bytes, crc32c {obj.crc32c}"
                )
            elif (
                deep
                and hashlib.sha256(blob.download_as_bytes(retry=GCS_RETRY)).hexdigest()
                != obj.sha256
            ):
                problem = "changed: its SHA-256 differs from the manifest"
            elif shredded and blob.storage_class not in ("ARCHIVE",):
                problem = "its data key is destroyed but this Standard-class object was not deleted"
            if problem:
                report.problems.append(
                    ArchiveProblem(manifest.conversation_id, obj.object, problem)
                )
        if progress is not None:
            progress(1)
    return report


def _check_json(bucket: Any, manifest: Manifest) -> list[ArchiveProblem]:
    name = manifest_object_name(manifest.conversation_id)
    blob = bucket.get_blob(name, retry=GCS_RETRY)
    if blob is None:
        return [ArchiveProblem(manifest.conversation_id, name, "the JSON manifest is missing")]
    stored = orjson.loads(blob.download_as_bytes(retry=GCS_RETRY))
    expected = manifest.to_json()
    for key in ("objects", "wrapped_key", "owner_key", "kek"):
        if stored.get(key) != expected[key]:
            return [
                ArchiveProblem(
                    manifest.conversation_id,
                    name,
                    f"the JSON manifest's {key} differs from the table",
                )
            ]
    return []
