"""Connection strings for DuckDB, and the BigQuery side of queries (no BigQuery runs offline)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr

from shared.errors import ConfigurationError
from shared.settings import load_settings
from shared.storage.warm import export, query


def test_conninfo_from_a_unix_socket_url() -> None:
    settings = load_settings().model_copy(
        update={
            "database_url": SecretStr(
                "postgresql+pg8000://postgres@/postgres?unix_sock=/tmp/pg/.s.PGSQL.5432"
            )
        }
    )
    assert export.libpq_conninfo(settings) == (
        "host='/tmp/pg' port='5432' dbname='postgres' user='postgres'"
    )


def test_conninfo_from_a_host_url_quotes_the_password() -> None:
    settings = load_settings().model_copy(
        update={"database_url": SecretStr("postgresql+pg8000://u:it's@db.example:6432/t")}
    )
    assert export.libpq_conninfo(settings) == (
        "host='db.example' port='6432' dbname='t' user='u' password='it\\'s'"
    )


def test_conninfo_for_cloud_sql_uses_the_private_ip_tls_and_a_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(export, "_access_token", lambda: "ya29.token")
    settings = load_settings().model_copy(
        update={
            "telemetry_cloudsql_instance": "p:r:i",
            "telemetry_cloudsql_host": "10.1.2.3",
            "telemetry_db_iam_user": "telemetry-snapshot@p.iam",
        }
    )
    assert export.libpq_conninfo(settings) == (
        "host='10.1.2.3' port='5432' dbname='telemetry' user='telemetry-snapshot@p.iam' "
        "password='ya29.token' sslmode='require'"
    )
    missing = settings.model_copy(update={"telemetry_cloudsql_host": None})
    with pytest.raises(ConfigurationError, match="TELEMETRY_CLOUDSQL_HOST"):
        export.libpq_conninfo(missing)
    with pytest.raises(ConfigurationError, match="DATABASE_URL"):
        export.libpq_conninfo(load_settings().model_copy(update={"database_url": None}))


def test_bigquery_sql_names_the_dataset_and_uses_bigquerys_dialect() -> None:
    sql = query.to_bigquery(
        "SELECT model, quantile_cont(latency_ms, 0.95) FROM api_calls_log GROUP BY 1", "p", "d"
    )
    assert "p.d.api_calls_log" in sql.replace("`", "")
    assert "PERCENTILE_CONT" in sql.upper()


def test_run_bigquery_sends_the_transpiled_sql(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[str] = []

    class Field:
        def __init__(self, name: str) -> None:
            self.name = name

    class Row:
        def values(self) -> tuple[Any, ...]:
            return ("m", 1.5)

    class Rows(list):  # type: ignore[type-arg]
        schema = [Field("model"), Field("p95")]

    class Job:
        def result(self) -> Rows:
            return Rows([Row()])

    class Client:
        def __init__(self, project: str) -> None:
            self.project = project

        def query(self, sql: str) -> Job:
            sent.append(sql)
            return Job()

    import google.cloud.bigquery as bigquery

    monkeypatch.setattr(bigquery, "Client", Client)
    result = query.run_bigquery(load_settings(), "SELECT 1 FROM telemetry_events", "ds")
    assert result.columns == ["model", "p95"] and result.rows == [("m", 1.5)]
    assert "telemetry-local.ds.telemetry_events" in sent[0].replace("`", "")
