"""Hot tier: telemetry_events and api_calls_log, range-partitioned by day.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# A migration is a snapshot of the schema at its revision: it spells its columns out and
# never imports live definitions (shared.storage.hot.tables), which later revisions change.


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE telemetry_events (
            event_id uuid NOT NULL,
            name text NOT NULL,
            version integer NOT NULL,
            category text NOT NULL CHECK (category IN ('ui', 'domain', 'llm')),
            event_ts timestamptz NOT NULL,
            received_at timestamptz NOT NULL,
            session_id text NOT NULL,
            user_key text,
            key_id text,
            conversation_id text,
            app_version text,
            props jsonb NOT NULL,
            sample_rate double precision NOT NULL CHECK (sample_rate > 0 AND sample_rate <= 1),
            CONSTRAINT telemetry_events_pkey PRIMARY KEY (event_id, event_ts)
        ) PARTITION BY RANGE (event_ts)
        """
    )
    op.execute(
        """
        CREATE TABLE api_calls_log (
            call_id uuid NOT NULL,
            ts timestamptz NOT NULL,
            received_at timestamptz NOT NULL,
            session_id text NOT NULL,
            provider text NOT NULL,
            model text NOT NULL,
            operation text NOT NULL,
            latency_ms double precision NOT NULL,
            time_to_first_chunk_ms double precision,
            input_tokens bigint NOT NULL DEFAULT 0 CHECK (input_tokens >= 0),
            output_tokens bigint NOT NULL DEFAULT 0 CHECK (output_tokens >= 0),
            cached_input_tokens bigint NOT NULL DEFAULT 0 CHECK (cached_input_tokens >= 0),
            cache_write_tokens bigint NOT NULL DEFAULT 0 CHECK (cache_write_tokens >= 0),
            reasoning_tokens bigint NOT NULL DEFAULT 0 CHECK (reasoning_tokens >= 0),
            audio_seconds double precision,
            cost_usd numeric(18, 8),
            cost_note text,
            price_version text,
            status text NOT NULL CHECK (status IN ('ok', 'error', 'timeout')),
            error_type text,
            retry_count integer NOT NULL DEFAULT 0,
            fallback_used boolean NOT NULL DEFAULT false,
            streamed boolean NOT NULL DEFAULT false,
            conversation_id text,
            user_key text,
            key_id text,
            app_version text,
            sample_rate double precision NOT NULL CHECK (sample_rate > 0 AND sample_rate <= 1),
            CONSTRAINT api_calls_log_pkey PRIMARY KEY (call_id, ts)
        ) PARTITION BY RANGE (ts)
        """
    )
    for table in ("telemetry_events", "api_calls_log"):
        # The default partition keeps a row whose day has no partition yet: never lost.
        op.execute(f"CREATE TABLE {table}_default PARTITION OF {table} DEFAULT")
        # Snapshots read by received_at; erasure looks people up by user_key.
        op.execute(f"CREATE INDEX {table}_received_at_idx ON {table} (received_at)")
        op.execute(
            f"CREATE INDEX {table}_user_key_idx ON {table} (user_key) WHERE user_key IS NOT NULL"
        )
    op.execute("CREATE INDEX telemetry_events_name_ts_idx ON telemetry_events (name, event_ts)")
    op.execute("CREATE INDEX api_calls_log_model_ts_idx ON api_calls_log (provider, model, ts)")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS api_calls_log CASCADE")
    op.execute("DROP TABLE IF EXISTS telemetry_events CASCADE")
