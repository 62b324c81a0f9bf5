"""The one place that sorts database errors into "retry may help" and "retry cannot help".

Transient: the database is unreachable or restarting, the connection was reset, the pool is
exhausted, a serialization failure or deadlock, resources ran out, or the schema is not there
yet (a deploy in progress). Terminal: the data itself is refused (data exceptions, integrity
violations). The sink answers non-2xx for transient errors (Pub/Sub redelivers with backoff)
and dead-letters terminal ones.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import exc as sa_exc

from shared.errors import ContractViolation, ServiceUnavailable, TelemetryError

#: SQLSTATE classes and codes where a retry can succeed.
TRANSIENT_CLASSES = (
    "08",
    "53",
    "57",
    "58",
    "42",
)  # connection, resources, shutdown, system, schema
TRANSIENT_CODES = frozenset({"40001", "40P01", "55P03", "55006"})
#: SQLSTATE classes where the data is refused: a retry gives the same answer.
TERMINAL_CLASSES = ("22", "23")


def sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE of a pg8000 error (directly or wrapped by SQLAlchemy), if any."""
    original: Any = getattr(error, "orig", None) or error
    args = getattr(original, "args", ())
    if args and isinstance(args[0], dict):
        code = args[0].get("C")
        return str(code) if code else None
    return None


def classify(error: BaseException) -> TelemetryError:
    """A typed error for any exception raised while writing to the hot tier."""
    if isinstance(error, TelemetryError):
        return error
    if isinstance(error, sa_exc.TimeoutError):
        return ServiceUnavailable("the connection pool is exhausted", service="postgresql")
    code = sqlstate(error)
    if code is not None:
        if code in TRANSIENT_CODES or code.startswith(TRANSIENT_CLASSES):
            return ServiceUnavailable(f"PostgreSQL error {code}, retry may succeed", "postgresql")
        if code.startswith(TERMINAL_CLASSES):
            return ContractViolation(f"PostgreSQL refused the data (SQLSTATE {code})")
        return ServiceUnavailable(f"PostgreSQL error {code}", service="postgresql")
    if isinstance(
        error, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError)
    ):
        return ServiceUnavailable(
            f"PostgreSQL connection failed ({type(error).__name__})", "postgresql"
        )
    if isinstance(error, (OSError, ConnectionError, TimeoutError)):
        return ServiceUnavailable(
            f"PostgreSQL is unreachable ({type(error).__name__})", "postgresql"
        )
    module = type(error).__module__
    if module.startswith("pg8000") and type(error).__name__ in (
        "InterfaceError",
        "OperationalError",
    ):
        return ServiceUnavailable(
            f"PostgreSQL connection failed ({type(error).__name__})", "postgresql"
        )
    if isinstance(error, sa_exc.DBAPIError):
        return ServiceUnavailable(f"database error ({type(error).__name__})", "postgresql")
    return ServiceUnavailable(
        f"unexpected error while writing ({type(error).__name__})", "postgresql"
    )
