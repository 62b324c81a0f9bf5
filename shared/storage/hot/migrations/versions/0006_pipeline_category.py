"""The ``pipeline`` category: ingest's own counts (``pipeline.intake``) are stored as events.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # On the partitioned parent: PostgreSQL applies it to every partition.
    op.execute("ALTER TABLE telemetry_events DROP CONSTRAINT telemetry_events_category_check")
    op.execute(
        "ALTER TABLE telemetry_events ADD CONSTRAINT telemetry_events_category_check "
        "CHECK (category IN ('ui', 'domain', 'llm', 'pipeline'))"
    )


def downgrade() -> None:
    op.execute("DELETE FROM telemetry_events WHERE category = 'pipeline'")
    op.execute("ALTER TABLE telemetry_events DROP CONSTRAINT telemetry_events_category_check")
    op.execute(
        "ALTER TABLE telemetry_events ADD CONSTRAINT telemetry_events_category_check "
        "CHECK (category IN ('ui', 'domain', 'llm'))"
    )
