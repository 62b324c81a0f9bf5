"""Connection strings for DuckDB's postgres extension."""

from __future__ import annotations

import msgspec
import pytest

from shared.errors import ConfigurationError
from shared.settings import Secret, load_settings
from shared.storage.warm import export


def test_conninfo_from_a_unix_socket_url() -> None:
    settings = msgspec.structs.replace(
        load_settings(),
        **{
            "database_url": Secret(
                "postgresql+pg8000://postgres@/postgres?unix_sock=/tmp/pg/.s.PGSQL.5432"
            )
        },
    )
    assert export.libpq_conninfo(settings) == (
        "host='/tmp/pg' port='5432' dbname='postgres' user='postgres'"
    )


def test_conninfo_from_a_host_url_quotes_the_password() -> None:
    settings = msgspec.structs.replace(
        load_settings(), **{"database_url": Secret("postgresql+pg8000://u:it's@db.example:6432/t")}
    )
    assert export.libpq_conninfo(settings) == (
        "host='db.example' port='6432' dbname='t' user='u' password='it\\'s'"
    )


def test_conninfo_for_cloud_sql_uses_the_private_ip_tls_and_a_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(export, "_access_token", lambda: "ya29.token")
    settings = msgspec.structs.replace(
        load_settings(),
        **{
            "telemetry_cloudsql_instance": "p:r:i",
            "telemetry_cloudsql_host": "10.1.2.3",
            "telemetry_db_iam_user": "telemetry-snapshot@p.iam",
        },
    )
    assert export.libpq_conninfo(settings) == (
        "host='10.1.2.3' port='5432' dbname='telemetry' user='telemetry-snapshot@p.iam' "
        "password='ya29.token' sslmode='require'"
    )
    missing = msgspec.structs.replace(settings, **{"telemetry_cloudsql_host": None})
    with pytest.raises(ConfigurationError, match="TELEMETRY_CLOUDSQL_HOST"):
        export.libpq_conninfo(missing)
    with pytest.raises(ConfigurationError, match="DATABASE_URL"):
        export.libpq_conninfo(msgspec.structs.replace(load_settings(), database_url=None))
