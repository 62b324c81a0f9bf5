"""Sorting DuckDB's errors by their cause, for the warm tier's jobs.

DuckDB raises one ``IOException`` for a PostgreSQL connection lost mid-export and for a local
file it cannot write, and one plain ``duckdb.Error`` for whatever a Python filesystem (gcsfs,
for ``gs://`` paths) raised. Their causes call for opposite answers, so they are told apart
by what the message says, as DuckDB and libpq word it:

* the hot tier's server unreachable or gone (libpq's connection failures) → transient;
* GCS unreachable (a connection error raised inside gcsfs) → transient;
* a local file that cannot be opened or written (permission, disk full, read-only) →
  :class:`~shared.errors.LocalFileError`, naming the path and the cause: no retry can help;
* anything else → ``None``: the caller re-raises the original, with its own type and traceback.
"""

from __future__ import annotations

import re
import sys

from shared.errors import LocalFileError, ServiceUnavailable, TelemetryError

#: DuckDB's local file failures: ``Cannot open file "<path>": <cause>``, ``Could not write
#: file "<path>": <cause>``, ``Failed to create directory "<path>": <cause>``.
_LOCAL_FILE = re.compile(
    r"(?:Cannot open file|Could not (?:write|read|truncate|sync) file|"
    r'Failed to create directory|Could not remove file) "(?P<path>[^"]+)": (?P<cause>[^\n]+)'
)
#: libpq's words for a server that cannot be reached or went away (DuckDB's postgres extension
#: passes them on in its ``IOException``).
_POSTGRES_GONE = (
    "Is the server running",
    "could not connect to server",
    "server closed the connection",
    "could not receive data from server",
    "could not send data to server",
    "terminating connection",
    "no connection to the server",
    "Connection refused",
    "timeout expired",
    "SSL SYSCALL error",
    "Network is unreachable",
    "No route to host",
    "Connection timed out",
    "could not translate host name",
    "the database system is shutting down",
    "the database system is starting up",
)
#: Connection failures raised inside a Python filesystem (gcsfs over aiohttp); DuckDB's message
#: starts with the exception's class name.
_GCS_GONE = (
    "ClientConnectorError",
    "ClientOSError",
    "ServerDisconnectedError",
    "ServerTimeoutError",
    "ConnectionError",
    "ConnectionRefusedError",
    "ConnectionResetError",
    "TimeoutError",
)


def without_conninfo(message: str) -> str:
    """DuckDB's message with the libpq connection string it quotes (a password or an access
    token among it) left out: the rest may be logged."""
    return re.sub(r'Postgres at "[^"]*"', "Postgres", message)


def sort_duckdb_error(error: BaseException) -> TelemetryError | None:
    """The typed error a DuckDB error stands for, or None to keep the original.

    DuckDB is looked up, not imported: an error of it exists only where DuckDB is loaded, and
    a function that never runs DuckDB (the sink classifies its failures here too) must not
    carry it in its bundle.
    """
    duckdb = sys.modules.get("duckdb")
    if duckdb is None or not isinstance(error, duckdb.Error):
        return None
    message = str(error)
    local = _LOCAL_FILE.search(message)
    if local is not None and not local.group("path").startswith(("gs://", "gcs://")):
        return LocalFileError(local.group("path"), local.group("cause").strip())
    if isinstance(error, duckdb.IOException | duckdb.ConnectionException) and any(
        words in message for words in _POSTGRES_GONE
    ):
        return ServiceUnavailable(
            f"PostgreSQL stopped answering the export ({type(error).__name__})", "postgresql"
        )
    if message.startswith(_GCS_GONE):
        return ServiceUnavailable(f"GCS does not answer ({message.split(':', 1)[0]})", "gcs")
    return None
