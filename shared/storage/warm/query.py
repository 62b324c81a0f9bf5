"""SQL over the event tables, whatever tier holds each row: DuckDB locally, BigQuery at scale.

``telemetry_events`` and ``api_calls_log`` are DuckDB views, each the union (by column name) of

* the warm tier: the recorded, unretired Parquet files of the warm catalog (``catalog.py``),
  read where they are in the bucket through fsspec/gcsfs (DuckDB's own ``httpfs`` extension
  downloads at run time);
* the hot tier past the watermark: the rows no finished snapshot holds yet, read from
  PostgreSQL through DuckDB's postgres extension, typed exactly like the files.

A row is in the files or past the watermark, never both, so no row is counted twice, and each
view answers for every day either tier holds (180 days of warm, the newest rows from hot).
``tier="hot"`` reads all hot rows and no files; ``tier="warm"`` the files alone.

At scale the operator CLI runs the same SQL on BigQuery (``telemetry_cli.bigquery``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from shared.contract.registry.loader import Registry
from shared.settings import Settings
from shared.storage.layout import EVENT_TABLES, Tier
from shared.storage.warm import catalog, export
from shared.storage.warm.catalog import watermark
from shared.storage.warm.columns import typed_select_sql, warm_columns


@dataclass(frozen=True)
class QueryResult:
    """Column names and rows of an answer."""

    columns: list[str]
    rows: list[tuple[Any, ...]]


def gcs_filesystem(settings: Settings) -> Any:
    """An fsspec filesystem for ``gs://`` (the emulator in dev, GCS with default credentials).

    It is gcsfs's core filesystem: the package's default one (``gcsfs.GCSFileSystem``) looks up
    hierarchical-namespace support on every call, and each lookup waits 60 s on the emulator.
    """
    from gcsfs.core import GCSFileSystem

    class ReadaheadGcs(GCSFileSystem):  # type: ignore[misc]
        """gcsfs whose files read ahead plainly: its default "adaptive" cache starts
        background prefetch tasks that DuckDB's short reads leave pending at close."""

        def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
            kwargs.setdefault("cache_type", "readahead")
            return super()._open(path, mode, **kwargs)

    if settings.storage_emulator_host:
        return ReadaheadGcs(
            project=settings.google_cloud_project,
            endpoint_url=settings.storage_emulator_host,
            token="anon",  # noqa: S106 - the emulator takes anonymous calls
        )
    return ReadaheadGcs(project=settings.google_cloud_project)


def _typed_select(table: str, registry: Registry, where: str) -> str:
    columns = warm_columns(table, registry)
    return typed_select_sql(table, columns, where, with_event_date=True)


def _pg_relation(select: str) -> str:
    """DuckDB SQL reading the answer of a PostgreSQL query (ours: typed columns of the registry)."""
    return f"SELECT * FROM postgres_query('pg', {export.sql_string(select)})"  # noqa: S608


def _files_relation(files: list[str]) -> str:
    """DuckDB SQL reading warm files, the event day from their hive path."""
    listing = "[" + ", ".join(export.sql_string(f) for f in files) + "]"
    return (
        f"SELECT * FROM read_parquet({listing}, hive_partitioning = true, "  # noqa: S608
        "union_by_name = true, hive_types = {'event_date': DATE})"
    )


def open_views(settings: Settings, engine: Engine, registry: Registry, tier: Tier = "both") -> Any:
    """A DuckDB connection whose ``telemetry_events`` and ``api_calls_log`` span the tiers."""
    con = export.connect(settings)
    con.register_filesystem(gcs_filesystem(settings))
    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
        for table in EVENT_TABLES:
            end = watermark(conn, table)
            files = [
                f"gs://{settings.telemetry_bucket}/{row[0]}"
                for row in catalog.live_files(conn, table)
            ]
            hot_where = "true" if tier == "hot" else f"stored_seq >= {end}"
            parts = []
            if tier != "warm":
                parts.append(_pg_relation(_typed_select(table, registry, hot_where)))
            if tier != "hot" and files:
                parts.append(_files_relation(files))
            if tier == "warm" and not files:  # an empty view with the right columns
                parts.append(_pg_relation(_typed_select(table, registry, "false")))
            union = " UNION ALL BY NAME ".join(parts)
            con.execute(f"CREATE OR REPLACE TEMP VIEW {table} AS {union}")
    return con


def run_duckdb(
    settings: Settings, engine: Engine, registry: Registry, sql: str, tier: Tier = "both"
) -> QueryResult:
    """Run ``sql`` (DuckDB's dialect) over the views of :func:`open_views`."""
    con = open_views(settings, engine, registry, tier)
    try:
        relation = con.sql(sql)
        return QueryResult(list(relation.columns), relation.fetchall())
    finally:
        con.close()
