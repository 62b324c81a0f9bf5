"""Exporting hot-tier rows to a local Parquet file with DuckDB, streaming, in bounded memory.

DuckDB reads PostgreSQL through its postgres extension (the PyPI package
``duckdb-extension-postgres``, loaded offline from a private extension folder) and writes
Parquet itself: rows stream from PostgreSQL into the writer a row group at a time, and
``memory_limit`` bounds the process whatever the table's size. The SQL that selects and types
the rows runs in PostgreSQL (``postgres_query``), so filters use its indexes.

Locally DuckDB connects over the embedded server's Unix socket. In production it connects to
Cloud SQL's private IP with TLS, as the function's IAM database user, with a fresh OAuth access
token as the password (IAM database authentication); no password exists anywhere.
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import threading
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from shared.errors import ConfigurationError
from shared.settings import Settings
from shared.storage import scratch
from shared.storage.hot.partitions import day_range_sql
from shared.storage.hot.suppression import not_suppressed_sql
from shared.storage.warm.columns import WarmColumn, typed_select_sql
from shared.storage.warm.duckdb_errors import sort_duckdb_error, without_conninfo

#: Rows per Parquet row group. The writer holds one group in memory, so this bounds memory:
#: measured on 2 M rows, half DuckDB's default (122,880) took the snapshot's peak RSS from
#: 326 MB to 251 MB, and no slower. A group is 2 to 3 MB, far under the 128 MB readers want.
ROW_GROUP_ROWS = 61_440
_EXTENSION = "postgres_scanner.duckdb_extension"
_extension_lock = threading.Lock()


def libpq_conninfo(settings: Settings) -> str:
    """The libpq connection string of the hot tier, from the same settings the engine uses."""
    if settings.telemetry_cloudsql_instance:
        if not settings.telemetry_cloudsql_host or not settings.telemetry_db_iam_user:
            raise ConfigurationError(
                "the snapshot reaches Cloud SQL at its private IP: set TELEMETRY_CLOUDSQL_HOST "
                "and TELEMETRY_DB_IAM_USER",
                ["TELEMETRY_CLOUDSQL_HOST", "TELEMETRY_DB_IAM_USER"],
            )
        return _conninfo(
            host=settings.telemetry_cloudsql_host,
            port="5432",
            dbname=settings.telemetry_db_name,
            user=settings.telemetry_db_iam_user,
            password=_access_token(),
            sslmode="require",
        )
    if settings.database_url is None:
        raise ConfigurationError("DATABASE_URL is not set", ["DATABASE_URL"])
    url = make_url(settings.database_url.get_secret_value())
    socket = url.query.get("unix_sock")
    if isinstance(socket, tuple):
        socket = socket[0]
    if socket:  # pg8000's unix_sock is the socket file: libpq wants its folder and port
        path = Path(socket)
        host, port = str(path.parent), path.name.rsplit(".", 1)[-1]
    else:
        host, port = url.host or "127.0.0.1", str(url.port or 5432)
    return _conninfo(
        host=host,
        port=port,
        dbname=url.database or "postgres",
        user=url.username or "postgres",
        password=url.password,
    )


def _conninfo(**values: str | None) -> str:
    def quote(value: str) -> str:
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"

    return " ".join(f"{key}={quote(value)}" for key, value in values.items() if value)


def _access_token() -> str:
    import google.auth
    import google.auth.transport.requests

    credentials, _ = google.auth.default(
        scopes=["https://www.googleapis.com/auth/sqlservice.login"]
    )
    credentials.refresh(google.auth.transport.requests.Request())  # type: ignore[no-untyped-call]
    return str(credentials.token)


@functools.cache
def _extension_source() -> tuple[str, Path]:
    import duckdb
    import duckdb_extension_postgres

    version = f"v{duckdb.__version__}"
    source = (
        Path(duckdb_extension_postgres.__file__).parent
        / "extensions"
        / version
        / "postgres.duckdb_extension"
    )
    if not source.exists():
        raise ConfigurationError(
            f"duckdb-extension-postgres has no build for DuckDB {version}: pin both to one version",
            [],
        )
    return version, source


def extension_directory() -> Path:
    """A private DuckDB extension folder holding the postgres extension from its PyPI wheel
    (inside this process's private folder, see :mod:`shared.storage.scratch`)."""
    version, source = _extension_source()
    root = scratch.process_folder() / "duckdb-extensions"
    target = root / version / "linux_amd64" / _EXTENSION
    with _extension_lock:
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(".partial")
            shutil.copyfile(source, partial)
            partial.replace(target)
    return root


@dataclass(frozen=True)
class Workspace:
    """A DuckDB connection and the private local folder of its run (spills, files waiting for
    their upload)."""

    con: Any
    folder: Path

    def local_path(self, object_name: str) -> Path:
        """Where the local copy of ``object_name`` is written before its upload."""
        return self.folder / Path(object_name).name


@contextlib.contextmanager
def workspace(settings: Settings, threads: int = 2, attach_hot: bool = True) -> Iterator[Workspace]:
    """A :class:`Workspace` for one run: the connection is closed and the folder removed when
    the block ends, however it ends."""
    con, folder, remove = _open(settings, threads, attach_hot)
    try:
        yield Workspace(con, folder)
    finally:
        con.close()
        remove()


def connect(settings: Settings, threads: int = 2, attach_hot: bool = True) -> Any:
    """A DuckDB connection with the hot tier attached (read-only) as ``pg`` (unless
    ``attach_hot`` is False: work on files alone). Its private spill folder goes when the
    connection is garbage-collected or the process exits; a run that writes files uses
    :func:`workspace` instead."""
    return _open(settings, threads, attach_hot)[0]


def _open(settings: Settings, threads: int, attach_hot: bool) -> tuple[Any, Path, Any]:
    import duckdb

    folder = scratch.new_run_folder()
    try:
        con = duckdb.connect(
            config={
                "autoinstall_known_extensions": False,
                "autoload_known_extensions": False,
                "extension_directory": str(extension_directory()),
                "memory_limit": f"{settings.telemetry_snapshot_memory_mb}MB",
                # Spills go to the run's private folder (DuckDB's default is ./.tmp, and a
                # Cloud Run function's working directory is its read-only source).
                "temp_directory": str(folder / "duckdb-spill"),
                "threads": threads,
            }
        )
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    remove = weakref.finalize(con, shutil.rmtree, str(folder), True)
    if not attach_hot:
        return con, folder, remove
    try:
        con.execute("LOAD postgres")
        con.execute(
            f"ATTACH {sql_string(libpq_conninfo(settings))} AS pg (TYPE postgres, READ_ONLY)"
        )
    except duckdb.Error as exc:
        con.close()
        remove()
        sorted_error = sort_duckdb_error(exc)
        if sorted_error is not None:
            raise sorted_error from None
        # The original quotes the connection string, password or token included: not kept.
        raise ConfigurationError(
            f"PostgreSQL refused the warm tier's connection: {without_conninfo(str(exc))}",
            ["DATABASE_URL", "TELEMETRY_DB_IAM_USER"],
        ) from None
    except BaseException:
        con.close()
        remove()
        raise
    return con, folder, remove


def sql_string(value: str) -> str:
    """A DuckDB string literal."""
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class DaySlice:
    """The rows of one table, one event day, one insertion range: one warm file."""

    table: str
    day: date
    seq_lo: int
    seq_hi: int

    def where(self) -> str:
        """The PostgreSQL filter of this slice (values are ints and a date: no user input)."""
        return (
            f"{range_where(self.table, self.seq_lo, self.seq_hi)} "
            f"AND {day_range_sql(self.table, self.day)}"
        )


def range_where(table: str, seq_lo: int, seq_hi: int) -> str:
    """PostgreSQL: the rows of an insertion range that a snapshot exports (erased people's
    rows never are, even before the erasure has deleted them from the hot tier)."""
    return (
        f"stored_seq >= {int(seq_lo)} AND stored_seq < {int(seq_hi)} "
        f"AND {not_suppressed_sql(table)}"
    )


def select_sql(piece: DaySlice, columns: Sequence[WarmColumn]) -> str:
    """The PostgreSQL query of one slice, typed and sorted."""
    return typed_select_sql(piece.table, list(columns), piece.where(), sorted_rows=True)


def export_slice(con: Any, piece: DaySlice, columns: Sequence[WarmColumn], path: Path) -> None:
    """Write one slice to ``path`` as zstd Parquet, streaming."""
    query = sql_string(select_sql(piece, columns))
    con.execute(  # the query is ours (typed columns of the registry, ints and a date)
        f"COPY (SELECT * FROM postgres_query('pg', {query})) TO {sql_string(str(path))} "  # noqa: S608
        f"(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {ROW_GROUP_ROWS})"
    )
