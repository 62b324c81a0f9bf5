"""The production database path (Cloud SQL connector, IAM auth) with the connector's API faked."""

from __future__ import annotations

from typing import ClassVar

import pytest

from shared.settings import load_settings
from shared.storage.hot import engine as db
from shared.storage.hot.errors import classify


class FakeConnector:
    made: ClassVar[list[dict[str, object]]] = []

    def __init__(self, **kwargs: object) -> None:
        FakeConnector.made.append(kwargs)
        self.calls: list[tuple[str, str, dict[str, object]]] = []

    def connect(self, instance: str, driver: str, **kwargs: object) -> object:
        self.calls.append((instance, driver, kwargs))
        raise ConnectionRefusedError("fake connector: no network")


@pytest.fixture
def prod_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "PUBSUB_EMULATOR_HOST",
        "STORAGE_EMULATOR_HOST",
        "DATABASE_URL",
        "TELEMETRY_ARCHIVE_KEK",
    ):
        monkeypatch.delenv(name, raising=False)
    for key, value in {
        "TELEMETRY_ENV": "prod",
        "GOOGLE_CLOUD_PROJECT": "acme",
        "TELEMETRY_BUCKET": "b",
        "TELEMETRY_PSEUDONYM_KEY": "k1:production-secret-long",
        "TELEMETRY_ALLOWED_ORIGINS": "https://app.acme.com",
        "TELEMETRY_CLOUDSQL_INSTANCE": "acme:europe-west1:telemetry",
        "TELEMETRY_DB_IAM_USER": "sink@acme.iam",
        "TELEMETRY_DB_POOL_SIZE": "8",
    }.items():
        monkeypatch.setenv(key, value)


def test_connector_engine_signs_in_as_the_iam_user(prod_env: None) -> None:
    connector = FakeConnector()
    engine = db.make_cloudsql_engine(load_settings(), connector)
    assert engine.pool.size() == 8
    with pytest.raises(ConnectionRefusedError) as info:
        engine.connect()
    assert classify(info.value).transient
    assert connector.calls == [
        ("acme:europe-west1:telemetry", "pg8000", {"user": "sink@acme.iam", "db": "telemetry"})
    ]


def test_get_engine_selects_the_connector_with_iam_auth(
    prod_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import google.cloud.sql.connector as connector_module

    FakeConnector.made.clear()
    monkeypatch.setattr(connector_module, "Connector", FakeConnector)
    monkeypatch.setattr(db, "_engine", None)
    engine = db.get_engine(load_settings())
    assert engine is db.get_engine()
    (kwargs,) = FakeConnector.made
    assert kwargs["enable_iam_auth"] is True
    assert str(kwargs["ip_type"]).endswith("PRIVATE")
    monkeypatch.setattr(db, "_engine", None)


def test_production_needs_the_iam_user_with_an_instance(
    prod_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.errors import ConfigurationError

    monkeypatch.delenv("TELEMETRY_DB_IAM_USER")
    with pytest.raises(ConfigurationError, match="TELEMETRY_DB_IAM_USER"):
        load_settings()
