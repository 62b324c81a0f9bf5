"""Cloud Storage for every tier: the client (created lazily once per process, anonymous on the
emulator), the retry every call uses, and the deletion of every version of an object."""

from __future__ import annotations

import threading
from typing import Any

from google.cloud.storage.retry import DEFAULT_RETRY

from shared.settings import Settings, get_settings

#: GCS calls retry transient failures for at most this long, then the run fails with one clear
#: error (and resumes next time). Every call is idempotent: creates carry
#: ``if_generation_match=0``, deletes the generation they delete.
GCS_RETRY = DEFAULT_RETRY.with_deadline(30.0)
_client: Any = None
_lock = threading.Lock()


def get_storage_client(settings: Settings | None = None) -> Any:
    """The process-wide ``google.cloud.storage.Client``."""
    global _client
    if _client is None:
        with _lock:
            if _client is None:
                from google.cloud import storage  # type: ignore[attr-defined]

                settings = settings or get_settings()
                if settings.storage_emulator_host:
                    from google.auth.credentials import AnonymousCredentials

                    _client = storage.Client(
                        project=settings.google_cloud_project,
                        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                    )
                else:
                    _client = storage.Client(project=settings.google_cloud_project)
    return _client


def reset_storage_client() -> None:
    """Forget the process-wide client (tests, after the environment changes)."""
    global _client
    with _lock:
        _client = None


def purge(bucket: Any, name: str, keep: int | None = None) -> int:
    """Delete every stored generation of ``name`` but ``keep``, the noncurrent ones a versioned
    bucket keeps included (an erased person must not live on in an old version); the number
    deleted."""
    deleted = 0
    for version in bucket.list_blobs(prefix=name, versions=True, retry=GCS_RETRY):
        if version.name == name and int(version.generation) != keep:
            bucket.blob(name, generation=version.generation).delete(retry=GCS_RETRY)
            deleted += 1
    return deleted
