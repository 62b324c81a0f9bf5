"""``archive``: the backend's way into the cold tier (raw transcripts, audio, model responses).

Synchronous: when it returns, every artifact is stored encrypted and listed in the manifest. It
needs what the lifecycle needs (``DATABASE_URL`` or Cloud SQL, ``TELEMETRY_BUCKET``,
``TELEMETRY_ARCHIVE_KEK``, ``TELEMETRY_PSEUDONYM_KEY``); the backend's service account needs
the bucket and the KMS key (Terraform grants both).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the cold tier's dependencies load on the first archive, not at import
    from shared.storage.cold.archive import ArchiveResult, ColdArchive

_archive: ColdArchive | None = None
_lock = threading.Lock()


def _get_archive() -> ColdArchive:
    global _archive
    if _archive is None:
        with _lock:
            if _archive is None:
                from shared.settings import get_settings
                from shared.storage.lifecycle import Lifecycle

                _archive = Lifecycle.from_settings(get_settings()).archive()
    return _archive


def archive(
    conversation_id: str,
    artifacts: Mapping[str, bytes | str],
    user_id: str | None = None,
) -> ArchiveResult:
    """Store a conversation's artifacts (name -> bytes or text) in the cold tier, encrypted
    under the conversation's data key; the same bytes are stored once.

    ``user_id`` is pseudonymised here and never stored raw; an erased person's artifacts are not
    stored (``result.suppressed``). Raises ``ContractViolation`` for a bad conversation id,
    artifact name or size, and ``ArchiveRefused`` for a conversation already erased.
    """
    return _get_archive().archive(conversation_id, artifacts, user_id)


def reset_archive() -> None:
    """Forget the archive (tests, after the environment changes)."""
    global _archive
    with _lock:
        _archive = None
