"""The alert state and the notification outbox, in PostgreSQL (migration 0005).

A metric's state row is locked while its evaluations are judged, and the notices they give are
written in the same transaction: a notice exists exactly when the state that produced it does.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from sqlalchemy import Connection, Engine, text

from shared.metrics.alerting import AlertState, Notice
from shared.metrics.catalog import Metric

Channel = Literal["webhook", "topic"]


@dataclass(frozen=True)
class OutboxRow:
    """A notice waiting for at least one of its channels."""

    id: int
    metric: str
    kind: str
    severity: str
    alert_id: str
    body: dict[str, Any]
    pending: tuple[Channel, ...]
    attempts: int


class AlertStore:
    """Reads and writes alert state and the outbox."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def locked(self, metric: Metric) -> Iterator[tuple[Connection, AlertState]]:
        """The metric's state, its row locked until the block ends (and commits).

        The row is made on the metric's first run only: a scheduled run locks and reads it in
        one statement.
        """
        key = {"m": metric.name, "w": metric.window}
        select = text(
            "SELECT state FROM metric_alert_state WHERE metric = :m AND window_spec = :w FOR UPDATE"
        )
        with self.engine.begin() as conn:
            raw = conn.execute(select, key).one_or_none()
            if raw is None:
                conn.execute(
                    text(
                        "INSERT INTO metric_alert_state (metric, window_spec, state) "
                        "VALUES (:m, :w, '{}'::jsonb) ON CONFLICT DO NOTHING"
                    ),
                    key,
                )
                raw = conn.execute(select, key).one()
            yield conn, AlertState.from_json(raw[0] or {})

    @staticmethod
    def save(
        conn: Connection,
        metric: Metric,
        state: AlertState,
        notices: Sequence[tuple[Notice, tuple[Channel, ...], dict[str, Any]]],
    ) -> int:
        """Store the new state and queue its notices (a notice already queued is kept once)."""
        conn.execute(
            text(
                "UPDATE metric_alert_state SET state = CAST(:s AS jsonb), updated_at = now() "
                "WHERE metric = :m AND window_spec = :w"
            ),
            {"s": orjson.dumps(state.to_json()).decode(), "m": metric.name, "w": metric.window},
        )
        queued = 0
        for notice, channels, body in notices:
            queued += conn.execute(
                text(
                    "INSERT INTO metric_alert_outbox (notice_key, metric, kind, severity, "
                    "alert_id, evaluated_at, channels, body, webhook_sent_at, topic_sent_at) "
                    "VALUES (:key, :m, :kind, :sev, :aid, :at, CAST(:channels AS text[]), "
                    "CAST(:body AS jsonb), :webhook_done, :topic_done) "
                    "ON CONFLICT (notice_key) DO NOTHING"
                ),
                {
                    "key": notice.key,
                    "m": notice.metric,
                    "kind": notice.kind,
                    "sev": notice.severity,
                    "aid": notice.alert_id,
                    "at": notice.at,
                    "channels": list(channels),
                    "body": orjson.dumps(body).decode(),
                    # A channel the notice does not use counts as done when it is queued.
                    "webhook_done": None if "webhook" in channels else notice.at,
                    "topic_done": None if "topic" in channels else notice.at,
                },
            ).rowcount
        return queued

    def states(self) -> dict[str, AlertState]:
        """Every metric's state, by metric name."""
        with self.engine.connect() as conn:
            rows = conn.execute(text("SELECT metric, state FROM metric_alert_state")).all()
        return {metric: AlertState.from_json(state or {}) for metric, state in rows}

    def pending(self, limit: int = 500) -> list[OutboxRow]:
        """Notices some channel has not confirmed, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT id, metric, kind, severity, alert_id, body, attempts, "
                    "webhook_sent_at IS NULL, topic_sent_at IS NULL FROM metric_alert_outbox "
                    "WHERE webhook_sent_at IS NULL OR topic_sent_at IS NULL ORDER BY id LIMIT :n"
                ),
                {"n": limit},
            ).all()
        out = []
        for row in rows:
            channels: list[Channel] = []
            if row[7]:
                channels.append("webhook")
            if row[8]:
                channels.append("topic")
            out.append(
                OutboxRow(row[0], row[1], row[2], row[3], row[4], row[5], tuple(channels), row[6])
            )
        return out

    def mark_sent(self, row_id: int, channel: Channel) -> None:
        """Record that ``channel`` confirmed the notice."""
        column = {"webhook": "webhook_sent_at", "topic": "topic_sent_at"}[channel]
        with self.engine.begin() as conn:
            conn.execute(
                text(f"UPDATE metric_alert_outbox SET {column} = now() WHERE id = :id"),  # noqa: S608
                {"id": row_id},
            )

    def mark_failed(self, row_id: int, error: str) -> None:
        """Count a failed delivery round (the notice stays queued for the next run)."""
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE metric_alert_outbox SET attempts = attempts + 1, last_error = :e "
                    "WHERE id = :id"
                ),
                {"id": row_id, "e": error[:500]},
            )

    def sent(self, since: datetime | None = None) -> list[dict[str, Any]]:
        """Queued notices (with their delivery times), oldest first: ``telemetry metrics check``."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT metric, kind, severity, alert_id, evaluated_at, webhook_sent_at, "
                    "topic_sent_at, attempts, last_error FROM metric_alert_outbox "
                    "WHERE evaluated_at >= :since ORDER BY id"
                ),
                {"since": since or datetime(1970, 1, 1, tzinfo=UTC)},
            ).mappings()
            return [dict(r) for r in rows]
