"""One frozen settings object, read from the environment once.

Every variable has a safe default for ``dev``. In ``staging`` and ``prod`` the variables that
production needs must be set: :func:`load_settings` raises one :class:`ConfigurationError`
naming each one that is missing, so a bad deploy fails at start-up, not on the first request.
Secrets are :class:`Secret` and never appear in ``repr`` or logs.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from shared.errors import ConfigurationError

Environment = Literal["dev", "staging", "prod"]

DEV_PSEUDONYM_KEY = "dev:dev-only-pseudonym-key-not-secret"
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


class Secret:
    """A secret setting: its value only through :meth:`get_secret_value`, never in ``repr``,
    ``str`` or a log line."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        """The secret itself (for the one call that needs it)."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    def __str__(self) -> str:
        return "**********"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class Settings(msgspec.Struct, frozen=True, rename="upper", kw_only=True):
    """The pipeline's configuration, one field per environment variable (its name upper-cased).

    A frozen msgspec struct: it builds in microseconds and imports in milliseconds, which a cold
    start of the public ingest function pays on its first request. :meth:`from_environment`
    reads, converts and checks the variables; a changed copy is ``msgspec.structs.replace``.
    """

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings the environment names (variable names in any case); the rest default.

        Raises one :class:`ConfigurationError` naming every variable with a bad value.
        """
        source = os.environ if environ is None else environ
        upper = {name.upper(): value for name, value in source.items()}
        # An empty variable whose default is "unset" is unset, as if it were not there.
        values = {
            name: upper[name]
            for name, default in zip(
                cls.__struct_encode_fields__, cls.__struct_defaults__, strict=True
            )
            if name in upper and (upper[name] != "" or default is not None)
        }
        try:
            settings = msgspec.convert(values, cls, strict=False, dec_hook=_decode_secret)
        except msgspec.ValidationError as exc:
            where = _AT.search(str(exc))
            name = where.group(1) if where else "?"
            message = _AT.sub("", str(exc))
            raise ConfigurationError(f"invalid settings: {name}: {message}", [name]) from None
        problems, names = [], []
        for name, check in _CHECKS.items():
            value = getattr(settings, name.lower())
            try:
                check(value)
            except ValueError as exc:
                names.append(name)
                problems.append(f"{name}: {exc}")
        if problems:
            raise ConfigurationError("invalid settings: " + "; ".join(problems), names)
        return settings

    telemetry_env: Environment = "dev"
    database_url: Secret | None = None
    google_cloud_project: str = "telemetry-local"
    pubsub_emulator_host: str | None = None
    storage_emulator_host: str | None = None
    telemetry_bucket: str = "telemetry-local"
    telemetry_topic: str = "telemetry-events"
    telemetry_pseudonym_key: Secret = Secret(DEV_PSEUDONYM_KEY)
    telemetry_allowed_origins: str = "http://localhost:8000,http://127.0.0.1:8000"
    telemetry_sample_rates: str | None = None
    telemetry_sampling_override: bool = False
    telemetry_log_level: str = "INFO"
    telemetry_tracing: Literal["auto", "on", "off"] = "auto"
    otel_exporter_otlp_endpoint: str | None = None
    telemetry_cloudsql_instance: str | None = None
    telemetry_cloudsql_ip_type: Literal["private", "public", "psc"] = "private"
    telemetry_db_iam_user: str | None = None
    #: The instance's private IP: the snapshot's DuckDB reaches Cloud SQL there directly (libpq,
    #: TLS, IAM database auth with an access token as the password).
    telemetry_cloudsql_host: str | None = None
    telemetry_db_name: str = "telemetry"
    telemetry_db_pool_size: Annotated[int, Meta(ge=1, le=100)] = 5
    telemetry_db_max_overflow: Annotated[int, Meta(ge=0, le=100)] = 5
    telemetry_db_pre_ping: bool = False
    telemetry_ingest_url: str | None = None
    telemetry_client_queue_size: Annotated[int, Meta(ge=1)] = 10_000
    telemetry_client_batch_size: Annotated[int, Meta(ge=1, le=500)] = 200
    telemetry_client_delay_s: Annotated[float, Meta(gt=0, le=60)] = 1.0
    #: How long ``telemetry_client`` retries a batch (backoff with jitter, ``Retry-After``
    #: honoured) before it drops it and counts it: an ingest or Pub/Sub outage shorter than
    #: this loses nothing.
    telemetry_client_retry_s: Annotated[float, Meta(ge=0, le=3600)] = 60.0
    #: How long the backend client flushes its queue at interpreter exit.
    telemetry_exit_flush_timeout_s: Annotated[float, Meta(ge=0, le=60)] = 5.0
    telemetry_max_body_bytes: Annotated[int, Meta(gt=0)] = 1 << 20
    telemetry_max_decompressed_bytes: Annotated[int, Meta(gt=0)] = 4 << 20
    telemetry_max_events: Annotated[int, Meta(gt=0, le=10000)] = 500
    telemetry_publish_timeout_s: Annotated[float, Meta(gt=0, le=60)] = 5.0
    #: Bearer tokens OTLP exporters send to ``/v1/traces`` (comma-separated; Secret Manager in
    #: production). Unset: the endpoint refuses every request.
    telemetry_otlp_tokens: Secret | None = None
    telemetry_otlp_max_body_bytes: Annotated[int, Meta(gt=0)] = 4 << 20
    telemetry_otlp_max_decompressed_bytes: Annotated[int, Meta(gt=0)] = 32 << 20
    telemetry_otlp_max_spans: Annotated[int, Meta(gt=0, le=100_000)] = 10_000
    telemetry_flags_ttl_s: Annotated[float, Meta(ge=0, le=3600)] = 30.0
    #: DuckDB's memory limit in the snapshot (bounded memory whatever the table's size).
    telemetry_snapshot_memory_mb: Annotated[int, Meta(ge=64, le=16384)] = 128
    #: The cold tier's key-encryption key: a Cloud KMS key name
    #: (``projects/P/locations/L/keyRings/R/cryptoKeys/K``) or, in dev only, ``file:PATH`` (a
    #: local 32-byte key, created on first use). Unset: the cold archive refuses to write.
    telemetry_archive_kek: str | None = None
    #: Largest artifact the cold archive takes, bytes (each is encrypted in memory).
    telemetry_archive_max_bytes: Annotated[int, Meta(gt=0)] = 256 << 20
    #: The anomaly function's Slack-compatible webhook (Secret Manager in production). Unset:
    #: alerts go to the ``telemetry-alerts`` topic only.
    telemetry_alert_webhook_url: Secret | None = None
    #: Where alert messages link a metric's runbook page (``<base><page>.md``).
    telemetry_runbook_base_url: Annotated[str, Meta(min_length=1)] = "docs/runbooks/"
    #: The weekly canary's target: an ingest URL (``…/v1/events``) the anomaly function replays
    #: warm-tier events into (Terraform: the deployment's own ingest unless another is named).
    telemetry_canary_target: str | None = None
    #: Read access to the target's hot tier (a ``postgresql+pg8000://`` URL; Secret Manager in
    #: production). Unset: this deployment's own database (the target is this deployment).
    telemetry_canary_target_database_url: Secret | None = None
    #: Hot paths (ingest) log their totals once per this many seconds, not a line per request.
    telemetry_log_summary_s: Annotated[float, Meta(gt=0, le=3600)] = 60.0
    #: Ingest's rate limits, per instance, in events per second and bucket size (burst). Where
    #: each default comes from (the capacity model, the web client's pacing): docs/abuse.md.
    #: A session (one tab) sends about one event a second; 5/s with a burst of 60 keeps every
    #: real user whole and holds a sender at 50 times that to a few percent.
    telemetry_rate_session_eps: Annotated[float, Meta(gt=0)] = 5.0
    telemetry_rate_session_burst: Annotated[float, Meta(ge=1)] = 60.0
    #: A client IP: many people can share one (an office, carrier-grade NAT).
    telemetry_rate_ip_eps: Annotated[float, Meta(gt=0)] = 100.0
    telemetry_rate_ip_burst: Annotated[float, Meta(ge=1)] = 500.0
    #: One site (Origin, ``-`` for servers): by default a whole instance's budget, as most
    #: deployments serve one site; with several, set each one's share of an instance.
    telemetry_rate_origin_eps: Annotated[float, Meta(gt=0)] = 34_000.0
    telemetry_rate_origin_burst: Annotated[float, Meta(ge=1)] = 34_000.0
    #: The instance: the capacity model's events per second per instance at 60 % of one vCPU.
    telemetry_rate_instance_eps: Annotated[float, Meta(gt=0)] = 34_000.0
    telemetry_rate_instance_burst: Annotated[float, Meta(ge=1)] = 34_000.0
    #: One OTLP bearer token, in spans per second (an exporter batches 512 spans by default).
    telemetry_rate_otlp_token_sps: Annotated[float, Meta(gt=0)] = 5_000.0
    telemetry_rate_otlp_token_burst: Annotated[float, Meta(ge=1)] = 20_000.0
    #: Buckets kept per table (sessions, IPs, ...), least recently used forgotten first.
    telemetry_rate_max_keys: Annotated[int, Meta(ge=1, le=10_000_000)] = 100_000
    #: Proxies of ours in front of ingest that append to ``X-Forwarded-For``: 0 when Cloud Run
    #: is reached directly (its front end appends the client's address last), 1 behind the
    #: external load balancer of ``edge_protection`` (it appends its own address after it).
    telemetry_trusted_proxy_hops: Annotated[int, Meta(ge=0, le=8)] = 0
    #: A sender IP that takes more than this share of an instance's budget in a summary
    #: interval raises the ``ingest.sender_flood`` alert (naming its pseudonym, never the IP).
    telemetry_rate_alert_share: Annotated[float, Meta(gt=0, le=1)] = 0.2

    @property
    def allowed_origins(self) -> tuple[str, ...]:
        """Origins whose browsers may send beacons."""
        return tuple(split_list(self.telemetry_allowed_origins))

    @property
    def otlp_tokens(self) -> tuple[str, ...]:
        """The bearer tokens ``/v1/traces`` accepts."""
        if self.telemetry_otlp_tokens is None:
            return ()
        return tuple(split_list(self.telemetry_otlp_tokens.get_secret_value()))

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
    def is_production(self) -> bool:
        """True in ``staging`` and ``prod``, where dev defaults are refused."""
        return self.telemetry_env != "dev"


def variable_names() -> tuple[str, ...]:
    """The environment variables :class:`Settings` reads, in field order."""
    return Settings.__struct_encode_fields__


def _decode_secret(kind: type, value: Any) -> Any:
    if kind is Secret and isinstance(value, str):
        return Secret(value)
    raise NotImplementedError(f"no conversion to {kind!r}")


_AT = re.compile(r" - at `\$\.(\w+)`")


def _check_keyring(value: Secret) -> None:
    parse_keyring(value.get_secret_value())


def _check_origins(value: str) -> None:
    for origin in split_list(value):
        if origin != "*" and not _ORIGIN.match(origin):
            raise ValueError(f"{origin!r} is not an origin like https://app.example.com")


def _check_kek(value: str | None) -> None:
    if value and not value.startswith("file:") and not _KMS_KEY.match(value):
        raise ValueError(
            "expected projects/P/locations/L/keyRings/R/cryptoKeys/K (Cloud KMS) or file:PATH"
        )


#: Checks beyond a variable's type and range, by variable.
_CHECKS: dict[str, Callable[[Any], None]] = {
    "TELEMETRY_PSEUDONYM_KEY": _check_keyring,
    "TELEMETRY_ALLOWED_ORIGINS": _check_origins,
    "TELEMETRY_ARCHIVE_KEK": _check_kek,
}


def split_list(value: str) -> list[str]:
    """The non-empty, stripped items of a comma-separated variable."""
    return [part.strip() for part in value.split(",") if part.strip()]


def parse_keyring(value: str) -> tuple[tuple[str, str], ...]:
    """Parse ``id:secret[,id:secret…]`` (first = active); a bare secret gets id ``default``."""
    pairs: list[tuple[str, str]] = []
    for part in split_list(value):
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


def load_settings() -> Settings:
    """Read the environment into a fresh :class:`Settings`, or explain what is wrong."""
    settings = Settings.from_environment()
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
