"""One frozen settings object, read from the environment once.

Every variable has a safe default for ``dev``. In ``staging`` and ``prod`` the variables that
production needs must be set: :func:`load_settings` raises one :class:`ConfigurationError`
naming each one that is missing, so a bad deploy fails at start-up, not on the first request.
Secrets are :class:`pydantic.SecretStr` and never appear in ``repr`` or logs.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from shared.contract.registry.keywords import CATEGORIES
from shared.errors import ConfigurationError

Environment = Literal["dev", "staging", "prod"]

DEV_PSEUDONYM_KEY = "dev:dev-only-pseudonym-key-not-secret"
#: Rates that differ from 1.0 per environment; every other category keeps every event.
DEFAULT_SAMPLE_RATES: dict[str, dict[str, float]] = {
    "dev": {},
    "staging": {},
    "prod": {"ui": 0.2},
}
_KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
_KMS_KEY = re.compile(r"^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$")
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?$")

#: Variables that ``staging`` and ``prod`` must set explicitly (no dev default is safe there).
REQUIRED_IN_PRODUCTION: tuple[str, ...] = (
    "GOOGLE_CLOUD_PROJECT",
    "TELEMETRY_BUCKET",
    "TELEMETRY_PSEUDONYM_KEY",
    "TELEMETRY_ALLOWED_ORIGINS",
)


class Settings(BaseModel):
    """The pipeline's configuration, one field per environment variable (the field's alias).

    A plain pydantic model: :meth:`from_environment` reads the variables. (pydantic-settings
    did the same and cost a cold start more time to import than the whole web framework.)
    """

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings the environment names (variable names in any case); the rest default."""
        source = os.environ if environ is None else environ
        upper = {name.upper(): value for name, value in source.items()}
        values: dict[str, Any] = {}
        for field in cls.model_fields.values():
            alias = field.alias
            if alias is not None and alias in upper:
                values[alias] = upper[alias]
        return cls.model_validate(values)

    telemetry_env: Environment = Field("dev", alias="TELEMETRY_ENV")
    database_url: SecretStr | None = Field(None, alias="DATABASE_URL")
    google_cloud_project: str = Field("telemetry-local", alias="GOOGLE_CLOUD_PROJECT")
    pubsub_emulator_host: str | None = Field(None, alias="PUBSUB_EMULATOR_HOST")
    storage_emulator_host: str | None = Field(None, alias="STORAGE_EMULATOR_HOST")
    telemetry_bucket: str = Field("telemetry-local", alias="TELEMETRY_BUCKET")
    telemetry_topic: str = Field("telemetry-events", alias="TELEMETRY_TOPIC")
    telemetry_pseudonym_key: SecretStr = Field(
        SecretStr(DEV_PSEUDONYM_KEY), alias="TELEMETRY_PSEUDONYM_KEY"
    )
    telemetry_allowed_origins: str = Field(
        "http://localhost:8000,http://127.0.0.1:8000", alias="TELEMETRY_ALLOWED_ORIGINS"
    )
    telemetry_sample_rates: str | None = Field(None, alias="TELEMETRY_SAMPLE_RATES")
    telemetry_sampling_override: bool = Field(False, alias="TELEMETRY_SAMPLING_OVERRIDE")
    telemetry_log_level: str = Field("INFO", alias="TELEMETRY_LOG_LEVEL")
    telemetry_tracing: Literal["auto", "on", "off"] = Field("auto", alias="TELEMETRY_TRACING")
    otel_exporter_otlp_endpoint: str | None = Field(None, alias="OTEL_EXPORTER_OTLP_ENDPOINT")
    telemetry_cloudsql_instance: str | None = Field(None, alias="TELEMETRY_CLOUDSQL_INSTANCE")
    telemetry_cloudsql_ip_type: Literal["private", "public", "psc"] = Field(
        "private", alias="TELEMETRY_CLOUDSQL_IP_TYPE"
    )
    telemetry_db_iam_user: str | None = Field(None, alias="TELEMETRY_DB_IAM_USER")
    #: The instance's private IP: the snapshot's DuckDB reaches Cloud SQL there directly (libpq,
    #: TLS, IAM database auth with an access token as the password).
    telemetry_cloudsql_host: str | None = Field(None, alias="TELEMETRY_CLOUDSQL_HOST")
    telemetry_db_name: str = Field("telemetry", alias="TELEMETRY_DB_NAME")
    telemetry_db_pool_size: int = Field(5, ge=1, le=100, alias="TELEMETRY_DB_POOL_SIZE")
    telemetry_db_max_overflow: int = Field(5, ge=0, le=100, alias="TELEMETRY_DB_MAX_OVERFLOW")
    telemetry_db_pre_ping: bool = Field(False, alias="TELEMETRY_DB_PRE_PING")
    telemetry_ingest_url: str | None = Field(None, alias="TELEMETRY_INGEST_URL")
    telemetry_client_queue_size: int = Field(10_000, ge=1, alias="TELEMETRY_CLIENT_QUEUE_SIZE")
    telemetry_client_batch_size: int = Field(200, ge=1, le=500, alias="TELEMETRY_CLIENT_BATCH_SIZE")
    telemetry_client_delay_s: float = Field(1.0, gt=0, le=60, alias="TELEMETRY_CLIENT_DELAY_S")
    #: How long ``telemetry_client`` retries a batch (backoff with jitter, ``Retry-After``
    #: honoured) before it drops it and counts it: an ingest or Pub/Sub outage shorter than
    #: this loses nothing.
    telemetry_client_retry_s: float = Field(60.0, ge=0, le=3600, alias="TELEMETRY_CLIENT_RETRY_S")
    #: How long the backend client flushes its queue at interpreter exit.
    telemetry_exit_flush_timeout_s: float = Field(
        5.0, ge=0, le=60, alias="TELEMETRY_EXIT_FLUSH_TIMEOUT_S"
    )
    telemetry_max_body_bytes: int = Field(1 << 20, gt=0, alias="TELEMETRY_MAX_BODY_BYTES")
    telemetry_max_decompressed_bytes: int = Field(
        4 << 20, gt=0, alias="TELEMETRY_MAX_DECOMPRESSED_BYTES"
    )
    telemetry_max_events: int = Field(500, gt=0, le=10000, alias="TELEMETRY_MAX_EVENTS")
    telemetry_publish_timeout_s: float = Field(
        5.0, gt=0, le=60, alias="TELEMETRY_PUBLISH_TIMEOUT_S"
    )
    #: Bearer tokens OTLP exporters send to ``/v1/traces`` (comma-separated; Secret Manager in
    #: production). Unset: the endpoint refuses every request.
    telemetry_otlp_tokens: SecretStr | None = Field(None, alias="TELEMETRY_OTLP_TOKENS")
    telemetry_otlp_max_body_bytes: int = Field(4 << 20, gt=0, alias="TELEMETRY_OTLP_MAX_BODY_BYTES")
    telemetry_otlp_max_decompressed_bytes: int = Field(
        32 << 20, gt=0, alias="TELEMETRY_OTLP_MAX_DECOMPRESSED_BYTES"
    )
    telemetry_otlp_max_spans: int = Field(
        10_000, gt=0, le=100_000, alias="TELEMETRY_OTLP_MAX_SPANS"
    )
    telemetry_flags_ttl_s: float = Field(30.0, ge=0, le=3600, alias="TELEMETRY_FLAGS_TTL_S")
    #: DuckDB's memory limit in the snapshot (bounded memory whatever the table's size).
    telemetry_snapshot_memory_mb: int = Field(
        128, ge=64, le=16384, alias="TELEMETRY_SNAPSHOT_MEMORY_MB"
    )
    #: The cold tier's key-encryption key: a Cloud KMS key name
    #: (``projects/P/locations/L/keyRings/R/cryptoKeys/K``) or, in dev only, ``file:PATH`` (a
    #: local 32-byte key, created on first use). Unset: the cold archive refuses to write.
    telemetry_archive_kek: str | None = Field(None, alias="TELEMETRY_ARCHIVE_KEK")
    #: Largest artifact the cold archive takes, bytes (each is encrypted in memory).
    telemetry_archive_max_bytes: int = Field(256 << 20, gt=0, alias="TELEMETRY_ARCHIVE_MAX_BYTES")
    #: The anomaly function's Slack-compatible webhook (Secret Manager in production). Unset:
    #: alerts go to the ``telemetry-alerts`` topic only.
    telemetry_alert_webhook_url: SecretStr | None = Field(None, alias="TELEMETRY_ALERT_WEBHOOK_URL")
    #: Where alert messages link a metric's runbook page (``<base><page>.md``).
    telemetry_runbook_base_url: str = Field(
        "docs/runbooks/", min_length=1, alias="TELEMETRY_RUNBOOK_BASE_URL"
    )
    #: The weekly canary's target: an ingest URL (``…/v1/events``) the anomaly function replays
    #: warm-tier events into (Terraform: the deployment's own ingest unless another is named).
    telemetry_canary_target: str | None = Field(None, alias="TELEMETRY_CANARY_TARGET")
    #: Read access to the target's hot tier (a ``postgresql+pg8000://`` URL; Secret Manager in
    #: production). Unset: this deployment's own database (the target is this deployment).
    telemetry_canary_target_database_url: SecretStr | None = Field(
        None, alias="TELEMETRY_CANARY_TARGET_DATABASE_URL"
    )
    #: Hot paths (ingest) log their totals once per this many seconds, not a line per request.
    telemetry_log_summary_s: float = Field(60.0, gt=0, le=3600, alias="TELEMETRY_LOG_SUMMARY_S")

    @field_validator("telemetry_pseudonym_key")
    @classmethod
    def _check_keyring(cls, value: SecretStr) -> SecretStr:
        parse_keyring(value.get_secret_value())
        return value

    @field_validator("telemetry_allowed_origins")
    @classmethod
    def _check_origins(cls, value: str) -> str:
        for origin in _split(value):
            if origin != "*" and not _ORIGIN.match(origin):
                raise ValueError(f"{origin!r} is not an origin like https://app.example.com")
        return value

    @field_validator("telemetry_sample_rates")
    @classmethod
    def _check_rates(cls, value: str | None) -> str | None:
        if value is not None:
            parse_sample_rates(value)
        return value

    @field_validator("telemetry_archive_kek")
    @classmethod
    def _check_kek(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not value.startswith("file:") and not _KMS_KEY.match(value):
            raise ValueError(
                "expected projects/P/locations/L/keyRings/R/cryptoKeys/K (Cloud KMS) or file:PATH"
            )
        return value

    @property
    def allowed_origins(self) -> tuple[str, ...]:
        """Origins whose browsers may send beacons."""
        return tuple(_split(self.telemetry_allowed_origins))

    @property
    def otlp_tokens(self) -> tuple[str, ...]:
        """The bearer tokens ``/v1/traces`` accepts."""
        if self.telemetry_otlp_tokens is None:
            return ()
        return tuple(_split(self.telemetry_otlp_tokens.get_secret_value()))

    @property
    def alert_webhook_url(self) -> str | None:
        """The alert webhook, or None (unset or empty: the topic only)."""
        if self.telemetry_alert_webhook_url is None:
            return None
        return self.telemetry_alert_webhook_url.get_secret_value().strip() or None

    @property
    def pseudonym_keys(self) -> tuple[tuple[str, str], ...]:
        """``(key_id, secret)`` pairs; the first is the active key, the rest are retired."""
        return parse_keyring(self.telemetry_pseudonym_key.get_secret_value())

    @property
    def sample_rates(self) -> dict[str, float]:
        """Sampling rate per category for this environment."""
        rates = dict.fromkeys(CATEGORIES, 1.0)
        rates.update(DEFAULT_SAMPLE_RATES[self.telemetry_env])
        if self.telemetry_sample_rates:
            rates.update(parse_sample_rates(self.telemetry_sample_rates))
        return rates

    @property
    def is_production(self) -> bool:
        """True in ``staging`` and ``prod``, where dev defaults are refused."""
        return self.telemetry_env != "dev"


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def parse_keyring(value: str) -> tuple[tuple[str, str], ...]:
    """Parse ``id:secret[,id:secret…]`` (first = active); a bare secret gets id ``default``."""
    pairs: list[tuple[str, str]] = []
    for part in _split(value):
        key_id, sep, secret = part.partition(":")
        if not sep:
            key_id, secret = "default", part
        if not _KEY_ID.match(key_id):
            raise ValueError("key ids are 1-32 characters of letters, digits, '_', '.', '-'")
        if len(secret) < 16:
            raise ValueError(f"the secret of key {key_id!r} is shorter than 16 characters")
        if key_id in {k for k, _ in pairs}:
            raise ValueError(f"key id {key_id!r} appears twice")
        pairs.append((key_id, secret))
    if not pairs:
        raise ValueError("at least one key is needed")
    return tuple(pairs)


def parse_sample_rates(value: str) -> dict[str, float]:
    """Parse ``ui=0.2,domain=1`` into rates per category, each in [0, 1]."""
    rates: dict[str, float] = {}
    for part in _split(value):
        category, sep, raw = part.partition("=")
        category = category.strip()
        if not sep or category not in CATEGORIES:
            raise ValueError(f"{part!r} is not <{'|'.join(CATEGORIES)}>=<rate>")
        try:
            rate = float(raw)
        except ValueError:
            raise ValueError(f"{raw!r} is not a number") from None
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate {rate} for {category} is outside [0, 1]")
        rates[category] = rate
    return rates


def load_settings() -> Settings:
    """Read the environment into a fresh :class:`Settings`, or explain what is wrong."""
    try:
        settings = Settings.from_environment()
    except ValidationError as exc:
        problems = []
        names = []
        for error in exc.errors():
            name = str(error["loc"][0]).upper() if error["loc"] else "?"
            names.append(name)
            problems.append(f"{name}: {error['msg']}")
        raise ConfigurationError("invalid settings: " + "; ".join(problems), names) from None
    if settings.is_production:
        _check_production(settings)
    return settings


def _check_production(settings: Settings) -> None:
    env = settings.telemetry_env
    missing = [name for name in REQUIRED_IN_PRODUCTION if not os.environ.get(name)]
    if not os.environ.get("DATABASE_URL") and not os.environ.get("TELEMETRY_CLOUDSQL_INSTANCE"):
        missing.append("DATABASE_URL or TELEMETRY_CLOUDSQL_INSTANCE")
    if os.environ.get("TELEMETRY_CLOUDSQL_INSTANCE") and not os.environ.get(
        "TELEMETRY_DB_IAM_USER"
    ):
        missing.append("TELEMETRY_DB_IAM_USER")
    if missing:
        raise ConfigurationError(
            f"TELEMETRY_ENV={env} needs these variables set: " + ", ".join(missing), missing
        )
    emulators = [n for n in ("PUBSUB_EMULATOR_HOST", "STORAGE_EMULATOR_HOST") if os.environ.get(n)]
    if emulators:
        raise ConfigurationError(
            f"TELEMETRY_ENV={env} must not point at emulators: unset " + ", ".join(emulators),
            emulators,
        )
    if any(key_id == "dev" for key_id, _ in settings.pseudonym_keys):
        raise ConfigurationError(
            f"TELEMETRY_ENV={env} refuses the dev pseudonym key", ["TELEMETRY_PSEUDONYM_KEY"]
        )
    if (settings.telemetry_archive_kek or "").startswith("file:"):
        raise ConfigurationError(
            f"TELEMETRY_ENV={env} refuses a local key file for the cold archive; use Cloud KMS",
            ["TELEMETRY_ARCHIVE_KEK"],
        )
    if any(len(token) < 16 for token in settings.otlp_tokens):
        raise ConfigurationError(
            f"TELEMETRY_ENV={env} needs every OTLP token to be 16 characters or more",
            ["TELEMETRY_OTLP_TOKENS"],
        )
    if "*" in settings.allowed_origins:
        raise ConfigurationError(
            f"TELEMETRY_ENV={env} refuses '*' as an allowed origin", ["TELEMETRY_ALLOWED_ORIGINS"]
        )


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, read once on first use."""
    return load_settings()


def reset_settings() -> None:
    """Forget the cached settings (tests, and the CLI after it changes the environment)."""
    get_settings.cache_clear()
