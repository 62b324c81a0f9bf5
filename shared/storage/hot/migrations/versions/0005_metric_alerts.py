"""The anomaly function's alert state and its notification outbox.

``metric_alert_state`` holds one row per metric and window: where its alert stands (JSON, see
``shared/metrics/alerting.py``), updated under a row lock so two runs never judge the same
evaluation twice. ``metric_alert_outbox`` holds every notice, written in the same transaction as
the state that produced it and unique per (metric, kind, evaluation time), with the time each
channel confirmed it: a webhook that is down is retried on the next run, and a crash between
the state change and the delivery loses nothing.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE metric_alert_state (
            metric text NOT NULL,
            window_spec text NOT NULL,
            state jsonb NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (metric, window_spec)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE metric_alert_outbox (
            id bigserial PRIMARY KEY,
            notice_key text NOT NULL UNIQUE,
            metric text NOT NULL,
            kind text NOT NULL,
            severity text NOT NULL,
            alert_id text NOT NULL,
            evaluated_at timestamptz NOT NULL,
            channels text[] NOT NULL,
            body jsonb NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            webhook_sent_at timestamptz,
            topic_sent_at timestamptz,
            attempts integer NOT NULL DEFAULT 0,
            last_error text
        )
        """
    )
    op.execute(
        "CREATE INDEX metric_alert_outbox_pending ON metric_alert_outbox (id) "
        "WHERE webhook_sent_at IS NULL OR topic_sent_at IS NULL"
    )


def downgrade() -> None:
    op.execute("DROP TABLE metric_alert_outbox")
    op.execute("DROP TABLE metric_alert_state")
