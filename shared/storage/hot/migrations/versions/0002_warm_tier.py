"""Warm tier bookkeeping: a commit-safe insertion sequence on the event tables, snapshot runs
and the verified Parquet files.

``stored_seq`` is the inserting transaction's id (``pg_current_xact_id()``, 64-bit, never wraps).
A snapshot reads the rows whose ``stored_seq`` lies below ``pg_snapshot_xmin`` of its own
snapshot: every transaction under that bound has finished, so no row can still commit into a
range a snapshot has already read (the case PostHog's batch exports missed, posthog#25850).
A BRIN index keeps the range scan cheap without slowing inserts down.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# A migration is a snapshot of the schema at its revision: names are spelled out here.


def upgrade() -> None:
    for table in ("telemetry_events", "api_calls_log"):
        op.execute(
            f"ALTER TABLE {table} ADD COLUMN stored_seq bigint NOT NULL "
            "DEFAULT (pg_current_xact_id()::text)::bigint"
        )
        op.execute(f"CREATE INDEX {table}_stored_seq_brin ON {table} USING brin (stored_seq)")
    op.execute(
        """
        CREATE TABLE snapshot_runs (
            table_name text NOT NULL,
            seq_lo bigint NOT NULL,
            seq_hi bigint NOT NULL CHECK (seq_hi >= seq_lo),
            state text NOT NULL CHECK (state IN ('pending', 'done')),
            started_at timestamptz NOT NULL DEFAULT now(),
            finished_at timestamptz,
            rows bigint,
            files integer,
            PRIMARY KEY (table_name, seq_lo)
        )
        """
    )
    op.execute(
        "CREATE UNIQUE INDEX snapshot_runs_one_pending ON snapshot_runs (table_name) "
        "WHERE state = 'pending'"
    )
    op.execute(
        """
        CREATE TABLE warm_files (
            object_name text PRIMARY KEY,
            table_name text NOT NULL,
            event_date date NOT NULL,
            generation bigint NOT NULL,
            rows bigint NOT NULL CHECK (rows >= 0),
            bytes bigint NOT NULL,
            crc32c text NOT NULL,
            event_id_digest text NOT NULL,
            seq_lo bigint NOT NULL,
            seq_hi bigint NOT NULL,
            user_keys integer NOT NULL,
            user_key_index bytea NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            retired_at timestamptz
        )
        """
    )
    op.execute(
        "CREATE INDEX warm_files_day ON warm_files (table_name, event_date) "
        "WHERE retired_at IS NULL"
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS warm_files")
    op.execute("DROP TABLE IF EXISTS snapshot_runs")
    for table in ("telemetry_events", "api_calls_log"):
        op.execute(f"ALTER TABLE {table} DROP COLUMN IF EXISTS stored_seq")
