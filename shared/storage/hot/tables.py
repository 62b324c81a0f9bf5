"""SQLAlchemy Core definitions of the hot tier's tables.

The schema itself is created by the Alembic migrations in ``shared/storage/hot/migrations`` (range
partitions and indexes included); these definitions are what code reads and writes through,
and a contract test checks that both agree column by column.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

from shared.llm.pricing import TOKEN_KINDS

metadata = MetaData()

#: The inserting transaction's id: set by PostgreSQL on every insert, never by a writer. The
#: warm tier's snapshots read by it (see migration 0002 for why it is commit-safe).
STORED_SEQ_DEFAULT = text("(pg_current_xact_id()::text)::bigint")

telemetry_events = Table(
    "telemetry_events",
    metadata,
    Column("event_id", UUID(as_uuid=False), nullable=False),
    Column("name", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("category", Text, nullable=False),
    Column("event_ts", DateTime(timezone=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("session_id", Text, nullable=False),
    Column("user_key", Text),
    Column("key_id", Text),
    Column("conversation_id", Text),
    Column("app_version", Text),
    Column("props", JSONB, nullable=False),
    Column("sample_rate", Float, nullable=False),
    Column("stored_seq", BigInteger, nullable=False, server_default=STORED_SEQ_DEFAULT),
    PrimaryKeyConstraint("event_id", "event_ts", name="telemetry_events_pkey"),
)

api_calls_log = Table(
    "api_calls_log",
    metadata,
    Column("call_id", UUID(as_uuid=False), nullable=False),
    Column("ts", DateTime(timezone=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("session_id", Text, nullable=False),
    Column("provider", Text, nullable=False),
    Column("model", Text, nullable=False),
    Column("operation", Text, nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("time_to_first_chunk_ms", Float),
    *(Column(name, BigInteger, nullable=False, server_default="0") for name in TOKEN_KINDS),
    Column("audio_seconds", Float),
    Column("cost_usd", Numeric(18, 8)),
    Column("cost_note", Text),
    Column("price_version", Text),
    Column("status", Text, nullable=False),
    Column("error_type", Text),
    Column("retry_count", Integer, nullable=False, server_default="0"),
    Column("fallback_used", Boolean, nullable=False, server_default="false"),
    Column("streamed", Boolean, nullable=False, server_default="false"),
    # llm.call v2: the token ledger (migration 0007).
    Column("token_source", Text),
    Column("token_anomaly", Text),
    Column("conversation_id", Text),
    Column("user_key", Text),
    Column("key_id", Text),
    Column("app_version", Text),
    Column("sample_rate", Float, nullable=False),
    Column("stored_seq", BigInteger, nullable=False, server_default=STORED_SEQ_DEFAULT),
    PrimaryKeyConstraint("call_id", "ts", name="api_calls_log_pkey"),
)

#: Columns PostgreSQL fills itself; writers leave them out.
SERVER_SET_COLUMNS = frozenset({"stored_seq"})


def written_columns(table: Table) -> tuple[str, ...]:
    """The columns a writer supplies, in table order."""
    return tuple(c for c in table.columns.keys() if c not in SERVER_SET_COLUMNS)  # noqa: SIM118


#: Columns of ``api_calls_log`` filled from the event's envelope, not from ``llm.call`` props.
CALL_ENVELOPE_COLUMNS = frozenset(
    {
        "call_id",
        "ts",
        "received_at",
        "session_id",
        "conversation_id",
        "user_key",
        "key_id",
        "app_version",
        "sample_rate",
    }
)

#: The one event stored in ``api_calls_log``; every other event goes to ``telemetry_events``.
LLM_CALL_EVENT = "llm.call"


def table_for_event(name: str) -> Table:
    """The hot-tier table that stores events of this name."""
    return api_calls_log if name == LLM_CALL_EVENT else telemetry_events
