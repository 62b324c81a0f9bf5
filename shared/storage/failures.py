"""The one classification of a failure at a storage boundary: transient, refused, or a bug.

Every function and the operator CLI ask :func:`classify_failure` what a failure of PostgreSQL,
DuckDB, GCS (or a Google API) means, and answer from the typed error it returns
(``shared.http.failure_answer`` for the functions: its HTTP status and ``Retry-After``):

* **transient** (:class:`~shared.errors.ServiceUnavailable`): the service did not answer, or
  answered "try later" (PostgreSQL's connection, resource and lock states, a GCS or HTTP
  timeout); the same call later may succeed;
* **refused** (a :class:`~shared.errors.TerminalError`): the request or the data cannot be done
  as it is (PostgreSQL refused the data, DuckDB refused a query, a local file cannot be
  written, no Google credentials); a retry gives the same answer;
* **a bug**: anything else is ``None``, and the caller re-raises the original error with its
  own type and traceback (never relabelled).
"""

from __future__ import annotations

import sys

from shared.errors import (
    ConfigurationError,
    ServiceUnavailable,
    TelemetryError,
    local_file_error,
)
from shared.storage.hot.errors import classify as classify_database_error
from shared.storage.warm.duckdb_errors import sort_duckdb_error


def classify_failure(error: BaseException) -> TelemetryError | None:
    """The typed error ``error`` means at a storage boundary, or None for a bug."""
    if isinstance(error, TelemetryError):
        return error
    local = local_file_error(error)
    if local is not None:
        return local
    if type(error).__module__.startswith(("duckdb", "_duckdb")):
        return sort_duckdb_error(error)
    database = classify_database_error(error)
    if database is not None:
        return database
    if _no_credentials(error):
        return ConfigurationError(
            "no Google credentials: set GOOGLE_APPLICATION_CREDENTIALS or run "
            "`gcloud auth application-default login` (or point STORAGE_EMULATOR_HOST and "
            "PUBSUB_EMULATOR_HOST at emulators)"
        )
    if _unreachable(error):
        name = type(error).__name__
        return ServiceUnavailable(f"GCS or another Google API does not answer ({name})", "google")
    return None


def _unreachable(error: BaseException) -> bool:
    """True when a Google API or HTTP call failed because the service did not answer in time."""
    if isinstance(error, ConnectionError | TimeoutError):
        return True
    # google-api-core's errors exist only where a client library loaded it (never in ingest).
    api = sys.modules.get("google.api_core.exceptions")
    if api is not None and isinstance(
        error, api.ServiceUnavailable | api.DeadlineExceeded | api.RetryError
    ):
        return True
    return type(error).__module__.startswith(("requests", "urllib3"))


def _no_credentials(error: BaseException) -> bool:
    auth = sys.modules.get("google.auth.exceptions")
    return auth is not None and isinstance(error, auth.DefaultCredentialsError)
