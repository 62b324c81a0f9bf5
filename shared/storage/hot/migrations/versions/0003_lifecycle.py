"""Lifecycle: the append-only audit log, erasure requests and their suppression list, and the
cold tier's manifests.

``audit_log`` is hash-chained (each row carries the hash of the one before) and refuses UPDATE,
DELETE and TRUNCATE by trigger; ``telemetry audit verify`` recomputes the chain. The suppression
list holds pseudonyms only, never a raw identifier. ``warm_files.retired_reason`` says why a file
left the warm tier (compaction, erasure, retention).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# A migration is a snapshot of the schema at its revision: names are spelled out here.


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE audit_log (
            seq bigint PRIMARY KEY CHECK (seq > 0),
            at timestamptz NOT NULL,
            action text NOT NULL,
            subject text NOT NULL,
            reason text NOT NULL,
            verified_by text NOT NULL,
            details jsonb NOT NULL,
            prev_hash text NOT NULL,
            hash text NOT NULL UNIQUE
        )
        """
    )
    op.execute(
        """
        CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()"
    )
    op.execute(
        "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()"
    )
    op.execute(
        """
        CREATE TABLE erasure_requests (
            request_id text PRIMARY KEY,
            user_keys text[] NOT NULL,
            persons integer NOT NULL CHECK (persons > 0),
            stage text NOT NULL CHECK (stage IN ('hot', 'warm', 'cold', 'done')),
            receipt jsonb NOT NULL DEFAULT '{}',
            created_at timestamptz NOT NULL DEFAULT now(),
            finished_at timestamptz
        )
        """
    )
    op.execute(
        """
        CREATE TABLE erasure_suppressions (
            user_key text PRIMARY KEY,
            request_id text NOT NULL REFERENCES erasure_requests (request_id),
            suppressed_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        CREATE TABLE storage_manifests (
            conversation_id text PRIMARY KEY,
            owner_key text,
            key_id text,
            kek text NOT NULL,
            wrapped_key bytea,
            retention_class text NOT NULL,
            objects jsonb NOT NULL DEFAULT '[]',
            bytes bigint NOT NULL DEFAULT 0,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz NOT NULL,
            shredded_at timestamptz,
            shredded_by text
        )
        """
    )
    op.execute(
        "CREATE INDEX storage_manifests_owner ON storage_manifests (owner_key) "
        "WHERE owner_key IS NOT NULL"
    )
    op.execute("CREATE INDEX storage_manifests_expiry ON storage_manifests (expires_at)")
    op.execute("ALTER TABLE warm_files ADD COLUMN retired_reason text")


def downgrade() -> None:
    op.execute("ALTER TABLE warm_files DROP COLUMN IF EXISTS retired_reason")
    op.execute("DROP TABLE IF EXISTS storage_manifests")
    op.execute("DROP TABLE IF EXISTS erasure_suppressions")
    op.execute("DROP TABLE IF EXISTS erasure_requests")
    op.execute("DROP TABLE IF EXISTS audit_log")
    op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
