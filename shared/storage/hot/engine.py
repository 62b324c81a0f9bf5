"""The SQLAlchemy engine of the hot tier, created lazily once per process, and migrations.

Locally the URL is a plain ``postgresql+pg8000://`` URL (a Unix socket is given as the
``unix_sock`` query parameter). In production the Cloud SQL Python Connector with IAM
authentication is used when ``TELEMETRY_CLOUDSQL_INSTANCE`` is set.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from shared.errors import ConfigurationError, ServiceUnavailable
from shared.observability.tracing import tracer_provider
from shared.settings import Settings, get_settings
from shared.storage.hot.partitions import ensure_partitions

logger = logging.getLogger(__name__)
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

_engine: Engine | None = None
_engine_lock = threading.Lock()


def make_engine(
    url: str, pool_size: int = 5, max_overflow: int = 5, pre_ping: bool = True
) -> Engine:
    """An engine for a ``postgresql+pg8000://`` URL; a clear error for any other URL.

    ``pre_ping`` tests each pooled connection before use (one round trip). Writers whose
    failures are retried anyway (the sink: Pub/Sub redelivers) turn it off and rely on
    SQLAlchemy invalidating the pool when a connection turns out dead.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigurationError(
            "DATABASE_URL is not a SQLAlchemy URL like postgresql+pg8000://user@host/db",
            ["DATABASE_URL"],
        ) from None
    if parsed.drivername != "postgresql+pg8000":
        raise ConfigurationError(
            f"DATABASE_URL uses driver {parsed.drivername!r}; expected postgresql+pg8000",
            ["DATABASE_URL"],
        )
    return create_engine(
        parsed,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=pre_ping,
        pool_recycle=1800,
        pool_timeout=10,
    )


def make_cloudsql_engine(settings: Settings, connector: Any = None) -> Engine:
    """An engine through the Cloud SQL Python Connector with IAM database authentication.

    The connector (pg8000 driver) opens TLS connections to the instance itself and signs in as
    the service account's IAM database user, so no password exists anywhere.
    """
    if connector is None:
        from google.cloud.sql.connector import Connector, IPTypes, RefreshStrategy

        connector = Connector(
            ip_type=IPTypes[settings.telemetry_cloudsql_ip_type.upper()],
            enable_iam_auth=True,
            refresh_strategy=RefreshStrategy.LAZY,
        )
    instance = settings.telemetry_cloudsql_instance

    def connect() -> Any:
        return connector.connect(
            instance,
            "pg8000",
            user=settings.telemetry_db_iam_user,
            db=settings.telemetry_db_name,
        )

    return create_engine(
        "postgresql+pg8000://",
        creator=connect,
        pool_size=settings.telemetry_db_pool_size,
        max_overflow=settings.telemetry_db_max_overflow,
        pool_pre_ping=settings.telemetry_db_pre_ping,
        pool_recycle=1800,
        pool_timeout=10,
    )


def get_engine(settings: Settings | None = None) -> Engine:
    """The process-wide engine, built on first use from the settings.

    ``TELEMETRY_CLOUDSQL_INSTANCE`` selects the Cloud SQL connector (production); otherwise
    ``DATABASE_URL`` is used. The pool is sized by ``TELEMETRY_DB_POOL_SIZE`` and
    ``TELEMETRY_DB_MAX_OVERFLOW`` to the function's concurrency.
    """
    global _engine
    if _engine is not None:
        return _engine
    with _engine_lock:
        if _engine is None:
            settings = settings or get_settings()
            if settings.telemetry_cloudsql_instance:
                _engine = make_cloudsql_engine(settings)
            elif settings.database_url is None:
                raise ConfigurationError(
                    "DATABASE_URL is not set (run `telemetry dev`, or point it at a server)",
                    ["DATABASE_URL"],
                )
            else:
                _engine = make_engine(
                    settings.database_url.get_secret_value(),
                    pool_size=settings.telemetry_db_pool_size,
                    max_overflow=settings.telemetry_db_max_overflow,
                    pre_ping=settings.telemetry_db_pre_ping,
                )
            instrument_engine(_engine)
    return _engine


def instrument_engine(engine: Engine) -> None:
    """Trace every statement of a SQLAlchemy engine (only when tracing is exported)."""
    provider = tracer_provider()
    if provider is None:
        return
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    SQLAlchemyInstrumentor().instrument(engine=engine, tracer_provider=provider)


def dispose_engine() -> None:
    """Close the process-wide engine's connections (tests, shutdown)."""
    global _engine
    with _engine_lock:
        if _engine is not None:
            _engine.dispose()
        _engine = None


def check_connection(engine: Engine) -> None:
    """Fail with :class:`ServiceUnavailable` unless the database answers a query."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except (DBAPIError, OSError) as exc:
        raise ServiceUnavailable(
            f"PostgreSQL at {engine.url.render_as_string(hide_password=True)} is unreachable: "
            f"{type(exc).__name__}",
            service="postgresql",
        ) from None


def alembic_config() -> Any:
    """An Alembic config pointing at the bundled migrations (no alembic.ini needed).

    Alembic is imported here, not at module level: functions that only read and write (the
    sink, the snapshot) never pay its memory.
    """
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def grant_writer(engine: Engine, role: str, updated_tables: Sequence[str] = ()) -> None:
    """Let a database role (a function's IAM user) read and insert events, now and in future
    partitions, use temporary staging tables, and update ``updated_tables`` (the snapshot's
    bookkeeping, which the warm catalog names); idempotent."""
    quoted = _quoted_role(role, "--grant-to")
    with engine.begin() as conn:
        database = conn.exec_driver_sql("SELECT current_database()").scalar()
        for statement in (
            f'GRANT TEMPORARY ON DATABASE "{database}" TO {quoted}',
            f"GRANT USAGE ON SCHEMA public TO {quoted}",
            f"GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA public TO {quoted}",
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT ON TABLES TO {quoted}",
        ):
            conn.exec_driver_sql(statement)
        if updated_tables:
            conn.exec_driver_sql(f"GRANT UPDATE ON {', '.join(updated_tables)} TO {quoted}")
    logger.info("writer granted", extra={"tables": "all in public"})


def grant_lifecycle(engine: Engine, role: str) -> None:
    """Let the lifecycle function's role act as the schema's owner: it creates and drops
    partitions and deletes erased people's rows (idempotent)."""
    quoted = _quoted_role(role, "--grant-lifecycle")
    with engine.begin() as conn:
        owner = conn.exec_driver_sql("SELECT current_user").scalar()
        conn.exec_driver_sql(f'GRANT "{owner}" TO {quoted}')
    logger.info("lifecycle granted", extra={"tables": "owner of public"})


def grant_anomaly(engine: Engine, role: str) -> None:
    """Let the anomaly function's role read every table, keep its alert state and outbox, and
    create and refresh its metric views in the schema (idempotent)."""
    quoted = _quoted_role(role, "--grant-anomaly")
    with engine.begin() as conn:
        for statement in (
            f"GRANT USAGE, CREATE ON SCHEMA public TO {quoted}",
            f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {quoted}",
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {quoted}",
            f"GRANT INSERT, UPDATE ON metric_alert_state, metric_alert_outbox TO {quoted}",
            f"GRANT USAGE ON SEQUENCE metric_alert_outbox_id_seq TO {quoted}",
        ):
            conn.exec_driver_sql(statement)
    logger.info("anomaly granted", extra={"tables": "read all; alert state; metric views"})


def _quoted_role(role: str, option: str) -> str:
    if not role or '"' in role or "\x00" in role:
        raise ConfigurationError(f"{role!r} is not a usable role name", [option])
    return '"' + role + '"'


def run_migrations(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema to ``revision`` and create the partitions around today."""
    from alembic import command

    check_connection(engine)
    with engine.begin() as conn:
        config = alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
    with engine.begin() as conn:
        created = ensure_partitions(conn)
    logger.info(
        "migrations applied", extra={"revision": revision, "partitions_created": len(created)}
    )
