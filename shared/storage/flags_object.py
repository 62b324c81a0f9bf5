"""The runtime flags object in the deployment's bucket: the store :mod:`shared.policy.flags`
reads and ``telemetry sampling`` writes, one small object over Cloud Storage's JSON API."""

from __future__ import annotations

from shared.policy.flags import FLAGS_OBJECT
from shared.settings import Settings, get_settings
from shared.storage.gcs_json import read_object, write_object


class GcsFlagStore:
    """The flags object in the bucket: ``gs://$TELEMETRY_BUCKET/config/runtime-flags.json``."""

    def __init__(self, settings: Settings | None = None, timeout_s: float = 2.0) -> None:
        self.settings = settings or get_settings()
        self.timeout_s = timeout_s

    def read(self) -> bytes | None:
        """The object's bytes (None when it does not exist)."""
        return read_object(self.settings, FLAGS_OBJECT, self.timeout_s)

    def write(self, data: bytes) -> None:
        """Store the object."""
        write_object(self.settings, FLAGS_OBJECT, data, "application/json", self.timeout_s)
