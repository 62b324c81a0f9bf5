from __future__ import annotations

import pytest

from shared.errors import ConfigurationError
from shared.policy.sampling import parse_sample_rates, sample_rates
from shared.settings import (
    DEV_PSEUDONYM_KEY,
    get_settings,
    load_settings,
    parse_keyring,
)


@pytest.fixture(autouse=True)
def _no_emulators(monkeypatch: pytest.MonkeyPatch) -> None:
    """The session's services point the environment at emulators; these tests must not see them."""
    for name in (
        "PUBSUB_EMULATOR_HOST",
        "STORAGE_EMULATOR_HOST",
        "TELEMETRY_SAMPLE_RATES",
        "TELEMETRY_ARCHIVE_KEK",
    ):
        monkeypatch.delenv(name, raising=False)


PROD_ENV = {
    "TELEMETRY_ENV": "prod",
    "GOOGLE_CLOUD_PROJECT": "acme-prod",
    "TELEMETRY_BUCKET": "acme-telemetry",
    "TELEMETRY_PSEUDONYM_KEY": "k2:a-very-long-production-secret",
    "TELEMETRY_ALLOWED_ORIGINS": "https://app.acme.com",
    "DATABASE_URL": "postgresql+pg8000://svc:pw@10.0.0.3/telemetry",
}


def test_dev_defaults_are_safe_and_complete(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROD_ENV:
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.telemetry_env == "dev"
    assert settings.telemetry_topic == "telemetry-events"
    assert settings.pseudonym_keys[0][0] == "dev"
    assert sample_rates(settings) == {"ui": 1.0, "domain": 1.0, "llm": 1.0, "pipeline": 1.0}
    assert not settings.is_production


def test_settings_are_frozen_and_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    first = get_settings()
    monkeypatch.setenv("TELEMETRY_BUCKET", "changed-later")
    assert get_settings() is first
    with pytest.raises(AttributeError, match="immutable"):
        first.telemetry_bucket = "x"  # type: ignore[misc]


def test_secrets_never_appear_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in PROD_ENV.items():
        monkeypatch.setenv(key, value)
    settings = load_settings()
    text = repr(settings) + str(settings)
    assert "a-very-long-production-secret" not in text
    assert ":pw@" not in text
    assert settings.pseudonym_keys == (("k2", "a-very-long-production-secret"),)


def test_production_names_every_missing_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROD_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TELEMETRY_ENV", "staging")
    with pytest.raises(ConfigurationError) as info:
        load_settings()
    message = str(info.value)
    for name in (
        "GOOGLE_CLOUD_PROJECT",
        "TELEMETRY_BUCKET",
        "TELEMETRY_PSEUDONYM_KEY",
        "TELEMETRY_ALLOWED_ORIGINS",
        "DATABASE_URL",
    ):
        assert name in message
    assert "TELEMETRY_BUCKET" in info.value.variables


def test_production_refuses_emulators_dev_key_and_wildcard(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in PROD_ENV.items():
        monkeypatch.setenv(key, value)
    assert load_settings().is_production
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", "127.0.0.1:8085")
    with pytest.raises(ConfigurationError, match="PUBSUB_EMULATOR_HOST"):
        load_settings()
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST")
    monkeypatch.setenv("TELEMETRY_PSEUDONYM_KEY", DEV_PSEUDONYM_KEY)
    with pytest.raises(ConfigurationError, match="dev pseudonym key"):
        load_settings()
    monkeypatch.setenv("TELEMETRY_PSEUDONYM_KEY", PROD_ENV["TELEMETRY_PSEUDONYM_KEY"])
    monkeypatch.setenv("TELEMETRY_ALLOWED_ORIGINS", "*")
    with pytest.raises(ConfigurationError, match="'\\*'"):
        load_settings()


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("TELEMETRY_ENV", "production", "TELEMETRY_ENV"),
        ("TELEMETRY_ALLOWED_ORIGINS", "app.acme.com", "TELEMETRY_ALLOWED_ORIGINS"),
        ("TELEMETRY_PSEUDONYM_KEY", "k1:short", "shorter than 16"),
    ],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, fragment: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as info:
        load_settings()
    assert fragment in str(info.value)
    assert name in info.value.variables


def test_keyring_first_key_is_active_and_bare_secret_gets_default_id() -> None:
    assert parse_keyring("k2:second-secret-long,k1:first-secret-longer") == (
        ("k2", "second-secret-long"),
        ("k1", "first-secret-longer"),
    )
    assert parse_keyring("just-a-long-bare-secret") == (("default", "just-a-long-bare-secret"),)
    with pytest.raises(ValueError, match="twice"):
        parse_keyring("a:0123456789abcdef,a:0123456789abcdef")
    with pytest.raises(ValueError, match="at least one"):
        parse_keyring(" , ")


def test_sample_rates_override_environment_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in PROD_ENV.items():
        monkeypatch.setenv(key, value)
    assert sample_rates(load_settings())["ui"] == 0.2
    monkeypatch.setenv("TELEMETRY_SAMPLE_RATES", "ui=0.5, llm=0.9")
    assert sample_rates(load_settings()) == {"ui": 0.5, "domain": 1.0, "llm": 0.9, "pipeline": 1.0}
    assert parse_sample_rates("") == {}
    with pytest.raises(ValueError, match="not <ui"):
        parse_sample_rates("web=1")
    with pytest.raises(ValueError, match="not a number"):
        parse_sample_rates("ui=lots")


@pytest.mark.parametrize(
    ("value", "fragment"), [("ui=2", "outside [0, 1]"), ("web=1", "not <ui"), ("ui", "not <ui")]
)
def test_bad_sample_rates_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str, fragment: str
) -> None:
    monkeypatch.setenv("TELEMETRY_SAMPLE_RATES", value)
    with pytest.raises(ConfigurationError) as info:
        sample_rates(load_settings())
    assert fragment in str(info.value)
    assert info.value.variables == ["TELEMETRY_SAMPLE_RATES"]


def test_production_refuses_a_local_archive_key_file(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in PROD_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("TELEMETRY_ARCHIVE_KEK", "file:/tmp/kek.key")
    with pytest.raises(ConfigurationError, match="Cloud KMS") as info:
        load_settings()
    assert info.value.variables == ["TELEMETRY_ARCHIVE_KEK"]
    kms = "projects/acme-prod/locations/europe-west1/keyRings/telemetry-cold/cryptoKeys/k"
    monkeypatch.setenv("TELEMETRY_ARCHIVE_KEK", kms)
    assert load_settings().telemetry_archive_kek == kms
    monkeypatch.setenv("TELEMETRY_ARCHIVE_KEK", "")
    assert load_settings().telemetry_archive_kek is None
