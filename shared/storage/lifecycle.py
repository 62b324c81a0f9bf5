"""The lifecycle's collaborators, built once from the settings: for the function and the CLI."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from shared.observability.alerts import AlertSend
from shared.policy.privacy import Pseudonymiser
from shared.settings import Settings
from shared.storage.cold.archive import ColdArchive
from shared.storage.cold.keys import kek_from_settings
from shared.storage.erasure import Eraser
from shared.storage.gcs import get_storage_client
from shared.storage.hot.engine import get_engine
from shared.storage.retention import Progress, Retention


@dataclass(frozen=True)
class Lifecycle:
    """Settings, database, bucket and pseudonyms: what retention, erasure and archives need."""

    settings: Settings
    engine: Engine
    bucket: Any

    @classmethod
    def from_settings(cls, settings: Settings) -> Lifecycle:
        """The deployment's lifecycle (the process-wide engine and storage client)."""
        bucket = get_storage_client(settings).bucket(settings.telemetry_bucket)
        return cls(settings, get_engine(), bucket)

    def eraser(self, progress: Callable[[str], object] | None = None) -> Eraser:
        """Erasure requests, under every pseudonym key (``progress`` gets a line per step)."""
        return Eraser(self.settings, self.engine, self.bucket, self.pseudonymiser(), progress)

    def retention(
        self, progress: Progress | None = None, alert: AlertSend | None = None
    ) -> Retention:
        """Retention on every tier; what it must keep is alerted through ``alert`` (the caller
        chooses where alerts go: the alerts topic, in the functions)."""
        return Retention(self.settings, self.engine, self.bucket, alert, progress)

    def archive(self) -> ColdArchive:
        """The cold archive under the configured key-encryption key."""
        kek = kek_from_settings(self.settings)
        return ColdArchive(self.settings, self.engine, self.bucket, kek, self.pseudonymiser())

    def pseudonymiser(self) -> Pseudonymiser:
        """Pseudonyms under every listed key (the first is active)."""
        return Pseudonymiser(self.settings.pseudonym_keys)
