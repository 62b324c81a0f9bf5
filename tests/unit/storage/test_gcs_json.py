"""Small-object calls to Google's endpoint: HTTPS with the service account's bearer token."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from shared.settings import load_settings
from shared.storage import gcs_json


class FakeCredentials:
    def __init__(self) -> None:
        self.valid = False
        self.token: str | None = None
        self.refreshed = 0

    def refresh(self, _request: Any) -> None:
        self.refreshed += 1
        self.valid, self.token = True, f"token-{self.refreshed}"


class FakeAnswer:
    def __init__(self, status: int, data: bytes) -> None:
        self.status, self._data = status, data

    def read(self) -> bytes:
        return self._data


def test_google_endpoint_calls_carry_a_fresh_token(monkeypatch: pytest.MonkeyPatch) -> None:
    import google.auth

    credentials = FakeCredentials()
    scopes_seen: list[Any] = []
    calls: list[tuple[str, str, str, dict[str, str]]] = []

    def default(scopes: Any = None) -> tuple[FakeCredentials, str]:
        scopes_seen.append(scopes)
        return credentials, "p"

    class FakeHttps:
        def __init__(self, host: str, timeout: float) -> None:
            self.host = host

        def request(self, method: str, path: str, body: Any = None, headers: Any = None) -> None:
            calls.append((self.host, method, path, dict(headers)))

        def getresponse(self) -> FakeAnswer:
            return FakeAnswer(404, b"") if len(calls) == 1 else FakeAnswer(200, b"{}")

        def close(self) -> None:
            pass

    monkeypatch.setattr(google.auth, "default", default)
    monkeypatch.setattr(gcs_json.http.client, "HTTPSConnection", FakeHttps)
    gcs_json.reset_client()
    settings = msgspec.structs.replace(
        load_settings(), storage_emulator_host=None, telemetry_bucket="acme data"
    )
    try:
        assert gcs_json.read_object(settings, "config/flags.json", 2.0) is None
        assert gcs_json.read_object(settings, "config/flags.json", 2.0) == b"{}"
    finally:
        gcs_json.reset_client()
    assert scopes_seen == [[gcs_json.STORAGE_SCOPE]]
    assert [c[0] for c in calls] == [gcs_json.GCS_HOST] * 2
    assert calls[0][2] == "/storage/v1/b/acme%20data/o/config%2Fflags.json?alt=media"
    assert calls[0][3]["Authorization"] == "Bearer token-1"
    assert credentials.refreshed == 1  # still valid for the second call
