"""One small object read or written over Cloud Storage's JSON API, for functions that touch
the bucket for nothing else.

Ingest reads one object (the runtime flags) and nothing more from the bucket. The client
library (google-cloud-storage, with google-api-core, google-resumable-media and requests) would
be five packages of its bundle and most of its first request's import time for that one GET, so
this module makes the two calls itself, with the standard library's ``http.client`` (which the
web framework has loaded already): ``GET …/o/<name>?alt=media`` and a media upload. Against
``STORAGE_EMULATOR_HOST`` it sends no credentials, as the library does; otherwise a bearer token
of the service account's Application Default Credentials (google-auth, loaded only then). Everything
that lists, streams or composes objects uses the library (``shared.storage.gcs``).
"""

from __future__ import annotations

import http.client
import threading
import urllib.parse
from typing import Any

from shared.errors import ServiceUnavailable
from shared.settings import Settings

GCS_HOST = "storage.googleapis.com"
STORAGE_SCOPE = "https://www.googleapis.com/auth/devstorage.read_write"

_credentials: Any = None
_lock = threading.Lock()


class GcsObjectError(ServiceUnavailable):
    """Cloud Storage answered a small-object call with an unexpected status."""

    def __init__(self, status: int, action: str) -> None:
        super().__init__(f"Cloud Storage answered {status} to {action}", service="gcs")
        self.status = status


def _authorization(settings: Settings) -> dict[str, str]:
    """No credentials for the emulator; a fresh bearer token for Google's endpoint."""
    global _credentials
    if settings.storage_emulator_host:
        return {}
    import google.auth
    import google.auth.transport.urllib3
    import urllib3

    with _lock:
        if _credentials is None:
            _credentials, _ = google.auth.default(scopes=[STORAGE_SCOPE])
        if not _credentials.valid:
            request = google.auth.transport.urllib3.Request(urllib3.PoolManager())  # type: ignore[no-untyped-call]
            _credentials.refresh(request)
        return {"Authorization": f"Bearer {_credentials.token}"}


def _call(
    settings: Settings,
    method: str,
    path: str,
    timeout_s: float,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    """One request on a connection of its own (these calls are rare: no pool to keep)."""
    host = settings.storage_emulator_host
    connection: http.client.HTTPConnection
    if host:
        parsed = urllib.parse.urlsplit(host if "://" in host else f"http://{host}")
        connection = http.client.HTTPConnection(parsed.netloc, timeout=timeout_s)
    else:
        connection = http.client.HTTPSConnection(GCS_HOST, timeout=timeout_s)
    try:
        connection.request(
            method, path, body=body, headers={**(headers or {}), **_authorization(settings)}
        )
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def read_object(settings: Settings, name: str, timeout_s: float) -> bytes | None:
    """The object's bytes from the deployment's bucket, or None when it does not exist."""
    bucket = urllib.parse.quote(settings.telemetry_bucket, safe="")
    path = f"/storage/v1/b/{bucket}/o/{urllib.parse.quote(name, safe='')}?alt=media"
    status, data = _call(settings, "GET", path, timeout_s)
    if status == 404:
        return None
    if status != 200:
        raise GcsObjectError(status, f"reading {name}")
    return data


def write_object(
    settings: Settings, name: str, data: bytes, content_type: str, timeout_s: float
) -> None:
    """Store ``data`` as the object ``name`` in the deployment's bucket (replacing it)."""
    bucket = urllib.parse.quote(settings.telemetry_bucket, safe="")
    query = urllib.parse.urlencode({"uploadType": "media", "name": name})
    path = f"/upload/storage/v1/b/{bucket}/o?{query}"
    status, _ = _call(settings, "POST", path, timeout_s, data, {"Content-Type": content_type})
    if status != 200:
        raise GcsObjectError(status, f"writing {name}")


def reset_client() -> None:
    """Forget the credentials (tests, after the environment changes)."""
    global _credentials
    with _lock:
        _credentials = None
