"""DuckDB's errors sorted by cause, from real DuckDB failures where this machine can cause them."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import msgspec
import pytest

from shared.errors import ConfigurationError, LocalFileError, ServiceUnavailable
from shared.settings import Secret, load_settings
from shared.storage.failures import classify_failure
from shared.storage.warm import export
from shared.storage.warm.duckdb_errors import sort_duckdb_error, without_conninfo

COPY = "COPY (SELECT range AS i FROM range(200000)) TO '{path}' (FORMAT parquet)"


def failure(sql: str) -> duckdb.Error:
    with pytest.raises(duckdb.Error) as caught:
        duckdb.connect().execute(sql)
    return caught.value


def test_a_full_disk_is_a_local_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "full.parquet"
    os.symlink("/dev/full", path)  # every write there fails as on a full disk
    error = sort_duckdb_error(failure(COPY.format(path=path)))
    assert isinstance(error, LocalFileError) and not error.transient
    assert error.path == str(path) and error.cause == "No space left on device"
    assert str(path) in error.message and "PostgreSQL" not in error.message


def test_a_missing_folder_is_a_local_error(tmp_path: Path) -> None:
    path = tmp_path / "gone" / "x.parquet"
    error = classify_failure(failure(COPY.format(path=path)))
    assert isinstance(error, LocalFileError) and error.cause == "No such file or directory"


def test_postgres_unreachable_at_attach_is_transient(tmp_path: Path) -> None:
    url = f"postgresql+pg8000://postgres@/postgres?unix_sock={tmp_path}/.s.PGSQL.5432"
    settings = msgspec.structs.replace(load_settings(), **{"database_url": Secret(url)})
    with pytest.raises(ServiceUnavailable, match="PostgreSQL") as caught:
        export.connect(settings)
    assert caught.value.service == "postgresql"


@pytest.mark.parametrize(
    "message",
    [
        "IO Error: Unable to read binary COPY data from Postgres: server closed the connection "
        "unexpectedly\n\tThis probably means the server terminated abnormally",
        'IO Error: Unable to connect to Postgres at "host=/x port=5432": connection to server on '
        'socket "/x/.s.PGSQL.5432" failed: No such file or directory\n\tIs the server running '
        "locally and accepting connections on that socket?",
    ],
)
def test_postgres_gone_mid_export_is_transient(message: str) -> None:
    error = sort_duckdb_error(duckdb.IOException(message))
    assert isinstance(error, ServiceUnavailable) and error.service == "postgresql"


def test_gcs_unreachable_through_gcsfs_is_transient() -> None:
    raised = duckdb.Error("ClientConnectorError: Cannot connect to host 127.0.0.1:1 ssl:default")
    error = sort_duckdb_error(raised)
    assert isinstance(error, ServiceUnavailable) and error.service == "gcs"
    assert "ClientConnectorError" in error.message


def test_a_refused_login_is_not_an_outage_and_hides_the_password() -> None:
    raised = duckdb.IOException(
        "IO Error: Unable to connect to Postgres at \"host='db' password='s3cret'\": "
        'FATAL:  password authentication failed for user "u"'
    )
    assert sort_duckdb_error(raised) is None
    shown = without_conninfo(str(raised))
    assert "s3cret" not in shown and "password authentication failed" in shown


def test_a_refused_login_at_attach_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Refusing:
        def __init__(self, con: object) -> None:
            self.con = con

        def execute(self, sql: str) -> object:
            if sql.startswith("ATTACH"):
                raise duckdb.IOException(
                    "IO Error: Unable to connect to Postgres at \"password='s3cret'\": "
                    "FATAL:  password authentication failed"
                )
            return self.con.execute(sql)  # type: ignore[attr-defined]

        def close(self) -> None:
            self.con.close()  # type: ignore[attr-defined]

    real = duckdb.connect
    monkeypatch.setattr(duckdb, "connect", lambda **kw: Refusing(real(**kw)))
    settings = msgspec.structs.replace(
        load_settings(), **{"database_url": Secret("postgresql+pg8000://u:s3cret@db/t")}
    )
    with pytest.raises(ConfigurationError, match="password authentication failed") as caught:
        export.connect(settings)
    assert "s3cret" not in str(caught.value)


def test_any_other_duckdb_error_keeps_its_own_type() -> None:
    raised = failure("SELECT * FROM no_such_table")
    assert sort_duckdb_error(raised) is None and classify_failure(raised) is None


def test_an_os_error_naming_a_file_is_local_and_a_socket_error_is_postgres() -> None:
    local = classify_failure(PermissionError(13, "Permission denied", "/tmp/x/telemetry-1-a"))
    assert isinstance(local, LocalFileError) and local.path == "/tmp/x/telemetry-1-a"
    assert "Permission denied" in local.message
    remote = classify_failure(ConnectionRefusedError(111, "Connection refused"))
    assert isinstance(remote, ServiceUnavailable) and remote.service == "postgresql"


def test_a_workspace_removes_its_folder_and_closes_its_connection() -> None:
    settings = load_settings()
    with export.workspace(settings, attach_hot=False) as space:
        path = space.local_path("analytics/t/event_date=2026-11-01/a.parquet")
        space.con.execute(f"COPY (SELECT 1 AS i) TO '{path}' (FORMAT parquet)")
        assert path.parent == space.folder and path.exists()
    assert not space.folder.exists()
    with pytest.raises(duckdb.ConnectionException):
        space.con.execute("SELECT 1")
