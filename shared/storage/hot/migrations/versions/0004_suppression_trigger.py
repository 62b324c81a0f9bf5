"""Erased people's events are dropped inside PostgreSQL, whatever writes them.

A statement-level trigger on each event table deletes, right after an INSERT or COPY, the new
rows whose ``user_key`` is on ``erasure_suppressions``, and reports how many in a NOTICE
(``telemetry: N suppressed``) that the sink counts. The sink thus pays no extra round trip per
batch; with an empty list the trigger returns at once. The erasure closes the race with writers
in flight by waiting, after listing the people, for every write transaction that began before
(``shared/storage/hot/suppression.py``).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# A migration is a snapshot of the schema at its revision: names are spelled out here.
TABLES = {"telemetry_events": ("event_id", "event_ts"), "api_calls_log": ("call_id", "ts")}


def upgrade() -> None:
    for table, (key, day) in TABLES.items():
        op.execute(  # names from TABLES above, never input
            f"""
            CREATE FUNCTION {table}_drop_suppressed() RETURNS trigger LANGUAGE plpgsql AS $$
            DECLARE
                dropped bigint;
            BEGIN
                IF NOT EXISTS (SELECT 1 FROM erasure_suppressions) THEN
                    RETURN NULL;
                END IF;
                DELETE FROM {table} t USING new_rows n
                WHERE t.{key} = n.{key} AND t.{day} = n.{day}
                  AND n.user_key IN (SELECT user_key FROM erasure_suppressions);
                GET DIAGNOSTICS dropped = ROW_COUNT;
                IF dropped > 0 THEN
                    RAISE NOTICE 'telemetry: % suppressed', dropped;
                END IF;
                RETURN NULL;
            END
            $$
            """  # noqa: S608
        )
        op.execute(
            f"CREATE TRIGGER {table}_suppressed AFTER INSERT ON {table} "
            f"REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
            f"EXECUTE FUNCTION {table}_drop_suppressed()"
        )


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_suppressed ON {table}")
        op.execute(f"DROP FUNCTION IF EXISTS {table}_drop_suppressed()")
