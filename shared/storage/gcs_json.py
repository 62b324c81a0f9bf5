"""One small object read or written over Cloud Storage's JSON API, for functions that touch
the bucket for nothing else.

Ingest reads one object (the runtime flags) and nothing more from the bucket. The client
library (google-cloud-storage, with google-api-core, google-resumable-media and requests) would
be five packages of its bundle and most of its first request's import time for that one GET, so
this module makes the two calls itself: ``GET …/o/<name>?alt=media`` and a media upload. Against
``STORAGE_EMULATOR_HOST`` it sends no credentials, as the library does; otherwise it signs with
the service account's Application Default Credentials (google-auth over urllib3). Everything
that lists, streams or composes objects uses the library (``shared.storage.gcs``).
"""

from __future__ import annotations

import threading
import urllib.parse
from typing import Any

import urllib3

from shared.errors import ServiceUnavailable
from shared.settings import Settings

GCS_ENDPOINT = "https://storage.googleapis.com"
STORAGE_SCOPE = "https://www.googleapis.com/auth/devstorage.read_write"

_http: Any = None
_lock = threading.Lock()


class GcsObjectError(ServiceUnavailable):
    """Cloud Storage answered a small-object call with an unexpected status."""

    def __init__(self, status: int, action: str) -> None:
        super().__init__(f"Cloud Storage answered {status} to {action}", service="gcs")
        self.status = status


def _client(settings: Settings) -> Any:
    """A pooled HTTP client: plain for the emulator, authorised for Google's endpoint."""
    global _http
    if _http is None:
        with _lock:
            if _http is None:
                if settings.storage_emulator_host:
                    _http = urllib3.PoolManager()
                else:
                    import google.auth
                    import google.auth.transport.urllib3

                    credentials, _ = google.auth.default(scopes=[STORAGE_SCOPE])
                    _http = google.auth.transport.urllib3.AuthorizedHttp(credentials)  # type: ignore[no-untyped-call]
    return _http


def _base(settings: Settings) -> str:
    host = settings.storage_emulator_host
    if not host:
        return GCS_ENDPOINT
    return host.rstrip("/") if "://" in host else f"http://{host.rstrip('/')}"


def read_object(settings: Settings, name: str, timeout_s: float) -> bytes | None:
    """The object's bytes from the deployment's bucket, or None when it does not exist."""
    bucket = urllib.parse.quote(settings.telemetry_bucket, safe="")
    url = f"{_base(settings)}/storage/v1/b/{bucket}/o/{urllib.parse.quote(name, safe='')}"
    answer = _client(settings).request(
        "GET", url, fields={"alt": "media"}, timeout=timeout_s, retries=False
    )
    if answer.status == 404:
        return None
    if answer.status != 200:
        raise GcsObjectError(answer.status, f"reading {name}")
    return bytes(answer.data)


def write_object(
    settings: Settings, name: str, data: bytes, content_type: str, timeout_s: float
) -> None:
    """Store ``data`` as the object ``name`` in the deployment's bucket (replacing it)."""
    bucket = urllib.parse.quote(settings.telemetry_bucket, safe="")
    query = urllib.parse.urlencode({"uploadType": "media", "name": name})
    url = f"{_base(settings)}/upload/storage/v1/b/{bucket}/o?{query}"
    answer = _client(settings).request(
        "POST",
        url,
        body=data,
        headers={"Content-Type": content_type},
        timeout=timeout_s,
        retries=False,
    )
    if answer.status != 200:
        raise GcsObjectError(answer.status, f"writing {name}")


def reset_client() -> None:
    """Forget the HTTP client (tests, after the environment changes)."""
    global _http
    with _lock:
        _http = None
