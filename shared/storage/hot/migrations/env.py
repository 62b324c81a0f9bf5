"""Alembic environment: runs on the connection handed over by shared.storage.hot.engine.run_migrations."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from shared.storage.hot.tables import metadata

config = context.config


def run_migrations_online() -> None:
    """Run against the connection given in ``config.attributes['connection']``."""
    connection: Connection | None = config.attributes.get("connection")
    if connection is None:  # pragma: no cover - only reached through the alembic CLI
        from shared.storage.hot.engine import get_engine

        with get_engine().connect() as conn:
            context.configure(connection=conn, target_metadata=metadata)
            with context.begin_transaction():
                context.run_migrations()
            conn.commit()
        return
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():  # pragma: no cover
    raise SystemExit("offline migrations are not supported; run `telemetry migrate`")
run_migrations_online()
