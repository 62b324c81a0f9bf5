"""A fresh database and bucket per test: the tiers the snapshot and the lifecycle work on."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from shared.contract.registry import default_registry
from shared.settings import Secret, get_settings
from shared.storage.gcs import get_storage_client
from shared.storage.hot.engine import make_engine, run_migrations
from shared.storage.warm.snapshot import Snapshotter


class Warm:
    """A fresh database and bucket, and a snapshotter over them."""

    def __init__(self, settings: Any, engine: Engine, bucket: Any, tmp: Path) -> None:
        self.settings = settings
        self.engine = engine
        self.bucket = bucket
        self.tmp = tmp

    def snapshotter(self) -> Snapshotter:
        return Snapshotter(self.settings, self.engine, self.bucket, default_registry())

    def files(self, table: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT object_name, event_date, rows, generation FROM warm_files "
                    "WHERE table_name = :t AND retired_at IS NULL ORDER BY object_name"
                ),
                {"t": table},
            ).mappings()
            return [dict(r) for r in rows]

    def warm_ids(self, table: str) -> list[str]:
        """Every id in every object under the table's prefix (recorded or not), with repeats."""
        column = "event_id" if table == "telemetry_events" else "call_id"
        ids: list[str] = []
        for blob in self.bucket.list_blobs(prefix=f"analytics/{table}/"):
            path = self.tmp / uuid.uuid4().hex
            blob.download_to_filename(str(path))
            ids += [
                r[0] for r in duckdb.sql(f"SELECT {column} FROM read_parquet('{path}')").fetchall()
            ]
        return ids


#: The database every fresh one is copied from: migrated once per session (per worker).
TEMPLATE = "tiers_template"
_templates: set[str] = set()


def _database_url(services: Any, name: str) -> str:
    return make_url(services.database_url).set(database=name).render_as_string(hide_password=False)


def _template(services: Any) -> str:
    """The migrated template database of this session's server (made on first use).

    ``CREATE DATABASE … TEMPLATE`` copies it in milliseconds, where running every migration
    takes seconds (as pytest-postgresql's janitor does). Partitions around today come with it,
    as :func:`run_migrations` made them."""
    if services.database_url not in _templates:
        _outside_transaction(services.database_url, f'DROP DATABASE IF EXISTS "{TEMPLATE}"')
        _outside_transaction(services.database_url, f'CREATE DATABASE "{TEMPLATE}"')
        engine = make_engine(_database_url(services, TEMPLATE))
        try:
            run_migrations(engine)
        finally:
            engine.dispose()  # a template must have no connection when it is copied
        _templates.add(services.database_url)
    return TEMPLATE


@contextlib.contextmanager
def fresh_tiers(services: Any, tmp: Path) -> Iterator[Warm]:
    """A fresh database on the session's PostgreSQL, migrated, and a fresh bucket.

    A database, not a server per test: starting a server forks from this process, whose gRPC
    threads (Pub/Sub clients) made initdb and pg_ctl abort now and then (epoll_wait: Bad file
    descriptor). Copied from the migrated template (:func:`_template`).
    """
    name = f"warm_{uuid.uuid4().hex[:12]}"
    template = _template(services)
    _outside_transaction(services.database_url, f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    url = _database_url(services, name)
    engine = make_engine(url)
    settings = msgspec.structs.replace(
        get_settings(),
        **{
            "database_url": Secret(url),
            "telemetry_bucket": f"warm-{uuid.uuid4().hex[:10]}",
        },
    )
    client = get_storage_client(settings)
    bucket = client.create_bucket(settings.telemetry_bucket)
    try:
        yield Warm(settings, engine, bucket, tmp)
    finally:
        engine.dispose()
        _outside_transaction(
            services.database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
        )


@pytest.fixture
def warm(services, tmp_path: Path) -> Iterator[Warm]:
    """Fresh tiers for one test."""
    with fresh_tiers(services, tmp_path) as tiers:
        yield tiers


def _outside_transaction(url: str, statement: str) -> None:
    """Run a statement PostgreSQL refuses inside a transaction (CREATE/DROP DATABASE)."""
    admin = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(statement)
    finally:
        admin.dispose()
