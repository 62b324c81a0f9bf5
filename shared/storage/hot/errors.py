"""The one place that sorts PostgreSQL driver errors: "retry may help" or "the data is refused".

Only driver errors are sorted, as dlt's ``_make_database_exception`` does; anything else (a
``TypeError`` in our own code, say) is not a database error and keeps its own type and
traceback: :func:`classify` returns ``None`` for it and the caller re-raises the original.

* Transient (:class:`ServiceUnavailable`): the server is unreachable, restarting or out of
  resources (SQLSTATE classes 08, 53, 57, 58), a serialization failure or deadlock (40001,
  40P01), a lock not available (55P03, 55006), the pool is exhausted, or the schema is not
  migrated yet (42P01 undefined table, 3F000 undefined schema: a deploy in progress).
* Refused data (:class:`DataRefused`): classes 22 (data exception) and 23 (integrity
  violation). A retry gives the same answer; the sink dead-letters such rows with the reason.
* Everything else, a syntax error or a missing privilege among them, is a bug or a
  misconfiguration, not the data's fault: it is left unclassified, so the sink answers 500,
  Pub/Sub retries it and, after max attempts, dead-letters it. Nothing is lost, and the
  traceback is in the log.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import exc as sa_exc

from shared.errors import ContractViolation, ServiceUnavailable, TelemetryError

#: SQLSTATE classes where a retry can succeed: connection, resources, shutdown, system.
TRANSIENT_CLASSES = ("08", "53", "57", "58")
#: SQLSTATE codes where a retry can succeed (concurrency, locks, the schema not there yet).
TRANSIENT_CODES = frozenset({"40001", "40P01", "55P03", "55006", "42P01", "3F000"})
#: SQLSTATE classes where the data is refused: a retry gives the same answer.
DATA_CLASSES = ("22", "23")
#: The SQLSTATE of a unique violation (an event stored before).
UNIQUE_VIOLATION = "23505"


class DataRefused(ContractViolation):
    """PostgreSQL refused the data itself (a data exception or an integrity violation)."""


def sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE of a pg8000 error (directly or wrapped by SQLAlchemy), if any."""
    original: Any = getattr(error, "orig", None) or error
    args = getattr(original, "args", ())
    if args and isinstance(args[0], dict):
        code = args[0].get("C")
        return str(code) if code else None
    return None


def _is_driver_error(error: BaseException) -> bool:
    if isinstance(error, sa_exc.DBAPIError | sa_exc.TimeoutError | sa_exc.DisconnectionError):
        return True
    return type(error).__module__.startswith("pg8000")


def is_disconnect(error: BaseException) -> bool:
    """True when ``error`` means the connection is gone and must not go back to the pool."""
    if isinstance(error, OSError | ConnectionError):
        return True
    if type(error).__module__.startswith("pg8000") and type(error).__name__ == "InterfaceError":
        return True
    code = sqlstate(error)
    return code is not None and code.startswith(("08", "57P"))


def classify(error: BaseException) -> TelemetryError | None:
    """A typed error for a driver error raised while using the hot tier; None for any other.

    ``OSError`` counts as a driver error here: pg8000 raises socket errors as they are.
    """
    if isinstance(error, TelemetryError):
        return error
    if isinstance(error, sa_exc.TimeoutError):
        return ServiceUnavailable("the connection pool is exhausted", service="postgresql")
    if isinstance(error, OSError | ConnectionError):
        return ServiceUnavailable(
            f"PostgreSQL is unreachable ({type(error).__name__})", "postgresql"
        )
    if not _is_driver_error(error):
        return None
    code = sqlstate(error)
    if code is not None:
        if code in TRANSIENT_CODES or code.startswith(TRANSIENT_CLASSES):
            return ServiceUnavailable(f"PostgreSQL error {code}, retry may succeed", "postgresql")
        if code.startswith(DATA_CLASSES):
            return DataRefused(f"PostgreSQL refused the data (SQLSTATE {code})")
        return None
    if is_disconnect(error) or isinstance(
        error, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.DisconnectionError
    ):
        return ServiceUnavailable(
            f"PostgreSQL connection failed ({type(error).__name__})", "postgresql"
        )
    if type(error).__name__ in ("InterfaceError", "OperationalError"):
        return ServiceUnavailable(
            f"PostgreSQL connection failed ({type(error).__name__})", "postgresql"
        )
    return None
