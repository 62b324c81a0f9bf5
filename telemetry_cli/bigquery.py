"""The warm tier's SQL on BigQuery, for analysts at scale (the operator CLI, never a function).

The same SQL as ``telemetry query`` runs on DuckDB, transpiled by sqlglot from DuckDB's dialect,
on the external tables Terraform defines over the warm tier's files.
"""

from __future__ import annotations

from shared.settings import Settings
from shared.storage.layout import EVENT_TABLES
from shared.storage.warm.query import QueryResult


def to_bigquery(sql: str, project: str, dataset: str) -> str:
    """``sql`` in BigQuery's dialect, the event tables qualified with ``project.dataset``."""
    import sqlglot
    from sqlglot import exp

    tree = sqlglot.parse_one(sql, read="duckdb")
    for table in tree.find_all(exp.Table):
        if table.name in EVENT_TABLES and not table.db:
            table.set("db", exp.to_identifier(dataset))
            table.set("catalog", exp.to_identifier(project))
    return tree.sql(dialect="bigquery")


def run_bigquery(settings: Settings, sql: str, dataset: str = "telemetry") -> QueryResult:
    """Run ``sql`` (DuckDB's dialect) on the BigQuery external tables over the warm tier."""
    from google.cloud import bigquery

    client = bigquery.Client(project=settings.google_cloud_project)
    job = client.query(to_bigquery(sql, settings.google_cloud_project, dataset))
    rows = job.result()
    return QueryResult([f.name for f in rows.schema], [tuple(r.values()) for r in rows])
