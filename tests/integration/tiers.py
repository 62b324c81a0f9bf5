"""A fresh database and bucket per test: the tiers the snapshot and the lifecycle work on."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, text

from shared.contract.registry import default_registry
from shared.settings import get_settings
from shared.storage.gcs import get_storage_client
from shared.storage.hot.engine import make_engine, run_migrations
from shared.storage.warm.snapshot import Snapshotter
from telemetry_cli.stack.postgres import EmbeddedPostgres


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


@pytest.fixture
def warm(services, tmp_path: Path) -> Iterator[Warm]:
    pg = EmbeddedPostgres(tmp_path / "pg")
    tmp_path.chmod(0o755)
    pg.start()
    engine = make_engine(pg.url)
    run_migrations(engine)
    settings = get_settings().model_copy(
        update={
            "database_url": SecretStr(pg.url),
            "telemetry_bucket": f"warm-{uuid.uuid4().hex[:10]}",
        }
    )
    client = get_storage_client(settings)
    bucket = client.create_bucket(settings.telemetry_bucket)
    try:
        yield Warm(settings, engine, bucket, tmp_path)
    finally:
        engine.dispose()
        pg.stop()
