"""The warm tier's SQL on BigQuery (no BigQuery runs offline: the client is faked)."""

from __future__ import annotations

from typing import Any

import pytest

from shared.settings import load_settings
from telemetry_cli import bigquery as telemetry_bigquery


def test_bigquery_sql_names_the_dataset_and_uses_bigquerys_dialect() -> None:
    sql = telemetry_bigquery.to_bigquery(
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
    result = telemetry_bigquery.run_bigquery(
        load_settings(), "SELECT 1 FROM telemetry_events", "ds"
    )
    assert result.columns == ["model", "p95"] and result.rows == [("m", 1.5)]
    assert "telemetry-local.ds.telemetry_events" in sent[0].replace("`", "")
