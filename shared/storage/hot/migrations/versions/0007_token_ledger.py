"""The token ledger: where an LLM call's counts came from, and the invariant they break.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # On the partitioned parent: PostgreSQL adds them to every partition (no rewrite: no default).
    op.execute("ALTER TABLE api_calls_log ADD COLUMN IF NOT EXISTS token_source text")
    op.execute("ALTER TABLE api_calls_log ADD COLUMN IF NOT EXISTS token_anomaly text")


def downgrade() -> None:
    op.execute("ALTER TABLE api_calls_log DROP COLUMN IF EXISTS token_anomaly")
    op.execute("ALTER TABLE api_calls_log DROP COLUMN IF EXISTS token_source")
