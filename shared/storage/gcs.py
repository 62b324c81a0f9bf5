"""The Cloud Storage client, created lazily once per process (anonymous on the emulator)."""

from __future__ import annotations

import threading
from typing import Any

from shared.settings import Settings, get_settings

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
