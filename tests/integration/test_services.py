"""The real local services, started by the session fixture, are reachable and provisioned."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import UTC, date, datetime, timedelta

import google_crc32c
import pytest
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import pubsub_v1, storage
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.dialects.postgresql import insert

from shared.errors import ConfigurationError, ServiceUnavailable
from shared.pubsub import resources as names
from shared.storage.hot.engine import check_connection, get_engine, make_engine, run_migrations
from shared.storage.hot.partitions import (
    ensure_partition,
    ensure_partitions,
    list_partitions,
    partition_name,
)
from shared.storage.hot.tables import api_calls_log, metadata, telemetry_events

pytestmark = pytest.mark.integration


def test_message_published_to_the_emulator_reaches_a_subscriber(services) -> None:
    project = services.options.project
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    sub_path = subscriber.subscription_path(project, f"probe-{uuid.uuid4().hex[:8]}")
    subscriber.create_subscription(
        name=sub_path, topic=publisher.topic_path(project, names.TOPIC_EVENTS)
    )
    try:
        future = publisher.publish(
            publisher.topic_path(project, names.TOPIC_EVENTS), b'{"hello": 1}', version="1"
        )
        future.result(timeout=10)
        response = subscriber.pull(subscription=sub_path, max_messages=10, timeout=10)
        (received,) = response.received_messages
        assert received.message.data == b'{"hello": 1}'
        assert received.message.attributes["version"] == "1"
        subscriber.acknowledge(subscription=sub_path, ack_ids=[received.ack_id])
    finally:
        subscriber.delete_subscription(subscription=sub_path)
        subscriber.close()


def test_sink_subscription_dead_letters_after_max_attempts(services) -> None:
    project = services.options.project
    subscriber = pubsub_v1.SubscriberClient()
    try:
        sub = subscriber.get_subscription(
            subscription=subscriber.subscription_path(project, names.SUBSCRIPTION_SINK)
        )
        assert sub.topic.endswith(f"/topics/{names.TOPIC_EVENTS}")
        assert sub.dead_letter_policy.dead_letter_topic.endswith(f"/topics/{names.TOPIC_DLQ}")
        assert sub.dead_letter_policy.max_delivery_attempts == names.MAX_DELIVERY_ATTEMPTS
        hold = subscriber.get_subscription(
            subscription=subscriber.subscription_path(project, names.SUBSCRIPTION_DLQ)
        )
        assert hold.topic.endswith(f"/topics/{names.TOPIC_DLQ}")
    finally:
        subscriber.close()


def test_provisioning_twice_is_harmless(services) -> None:
    from telemetry_cli.stack import gcs, pubsub

    pubsub.provision(services.options.project, None)
    gcs.provision(services.options.project, services.options.bucket)


def test_object_written_to_gcs_reads_back_with_its_checksum(services) -> None:
    client = storage.Client(project=services.options.project, credentials=AnonymousCredentials())
    bucket = client.bucket(services.options.bucket)
    payload = json.dumps({"rows": list(range(1000))}).encode()
    blob = bucket.blob(f"analytics/probe/{uuid.uuid4().hex}.json")
    blob.upload_from_string(payload, if_generation_match=0)
    fetched = bucket.get_blob(blob.name)
    assert fetched is not None
    assert fetched.md5_hash == base64.b64encode(hashlib.md5(payload).digest()).decode()
    crc = google_crc32c.Checksum(payload).digest()
    assert fetched.crc32c == base64.b64encode(crc).decode()
    assert fetched.download_as_bytes(checksum="crc32c") == payload
    with pytest.raises(gexc.PreconditionFailed):
        blob.upload_from_string(b"other", if_generation_match=0)


def test_migrations_create_partitioned_tables_matching_the_definitions(engine: Engine) -> None:
    inspector = inspect(engine)
    tables = set(inspector.get_table_names())
    assert {"telemetry_events", "api_calls_log", "alembic_version"} <= tables
    for table in (telemetry_events, api_calls_log):
        columns = {c["name"]: c for c in inspector.get_columns(table.name)}
        assert set(columns) == set(table.columns.keys()), table.name
        for column in table.columns:
            assert columns[column.name]["nullable"] == column.nullable, (table.name, column.name)
        pk = inspector.get_pk_constraint(table.name)["constrained_columns"]
        assert pk == [c.name for c in table.primary_key.columns]
        indexes = {i["name"] for i in inspector.get_indexes(table.name)}
        assert f"{table.name}_received_at_idx" in indexes
        assert f"{table.name}_user_key_idx" in indexes
    with engine.connect() as conn:
        kinds = dict(
            conn.execute(
                text(
                    "SELECT c.relname, p.partstrat FROM pg_partitioned_table p "
                    "JOIN pg_class c ON c.oid = p.partrelid"
                )
            ).all()
        )
        assert kinds == {"telemetry_events": "r", "api_calls_log": "r"}
        today = datetime.now(UTC).date()
        for table in ("telemetry_events", "api_calls_log"):
            parts = list_partitions(conn, table)
            assert f"{table}_default" in parts
            assert partition_name(table, today) in parts
            assert partition_name(table, today + timedelta(days=7)) in parts
    assert set(metadata.tables) == {"telemetry_events", "api_calls_log"}


def test_migrations_are_idempotent(engine: Engine) -> None:
    from alembic.script import ScriptDirectory

    from shared.storage.hot.engine import alembic_config

    run_migrations(engine)
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head == "0007"
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head


def _event_row(event_id: str, ts: datetime) -> dict[str, object]:
    return {
        "event_id": event_id,
        "name": "node.expand",
        "version": 1,
        "category": "ui",
        "event_ts": ts,
        "received_at": datetime.now(UTC),
        "session_id": "s-test",
        "props": {"node_id": "n-1"},
        "sample_rate": 1.0,
    }


def test_row_for_a_day_without_partition_is_kept_and_moved_when_the_day_is_created(
    engine: Engine,
) -> None:
    day = date(2020, 2, 29)
    ts = datetime(2020, 2, 29, 13, 30, tzinfo=UTC)
    event_id = str(uuid.uuid4())
    with engine.begin() as conn:
        conn.execute(insert(telemetry_events).values(_event_row(event_id, ts)))
        where = text("SELECT count(*) FROM telemetry_events_default WHERE event_id = :e")
        assert conn.execute(where, {"e": event_id}).scalar() == 1
    with engine.begin() as conn:
        assert ensure_partition(conn, "telemetry_events", day) is True
        assert ensure_partition(conn, "telemetry_events", day) is False
    with engine.connect() as conn:
        moved = text(
            f"SELECT count(*) FROM {partition_name('telemetry_events', day)} WHERE event_id = :e"
        )
        assert conn.execute(moved, {"e": event_id}).scalar() == 1
        assert conn.execute(where, {"e": event_id}).scalar() == 0
        stored = conn.execute(
            select(telemetry_events.c.event_ts).where(telemetry_events.c.event_id == event_id)
        ).scalar_one()
        assert stored == ts


def test_storing_the_same_event_twice_leaves_one_row(engine: Engine) -> None:
    event_id = str(uuid.uuid4())
    ts = datetime.now(UTC).replace(microsecond=0)
    statement = insert(telemetry_events).on_conflict_do_nothing(
        index_elements=["event_id", "event_ts"]
    )
    with engine.begin() as conn:
        first = conn.execute(statement.values(_event_row(event_id, ts))).rowcount
        second = conn.execute(statement.values(_event_row(event_id, ts))).rowcount
        count = conn.execute(
            select(text("count(*)"))
            .select_from(telemetry_events)
            .where(telemetry_events.c.event_id == event_id)
        ).scalar()
    assert (first, second, count) == (1, 0, 1)


def test_ensure_partitions_is_idempotent(engine: Engine) -> None:
    with engine.begin() as conn:
        assert ensure_partitions(conn) == []


def test_engine_from_settings_reaches_the_stack(services) -> None:
    check_connection(get_engine())


def test_bad_database_urls_are_explained() -> None:
    with pytest.raises(ConfigurationError, match="driver 'mysql'"):
        make_engine("mysql://u@h/db")
    with pytest.raises(ConfigurationError, match="not a SQLAlchemy URL"):
        make_engine("::::")
    unreachable = make_engine("postgresql+pg8000://u@127.0.0.1:1/db")
    with pytest.raises(ServiceUnavailable, match="unreachable") as info:
        check_connection(unreachable)
    assert info.value.transient


def test_get_engine_without_database_url_is_a_configuration_error(monkeypatch) -> None:
    from shared.storage.hot import engine as db

    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setattr(db, "_engine", None)
    with pytest.raises(ConfigurationError, match="DATABASE_URL is not set"):
        db.get_engine()


def test_write_events_stores_only_what_is_missing(engine: Engine) -> None:
    from shared.contract.stored_event import StoredEvent
    from shared.storage.hot.writer import write_events

    now = datetime.now(UTC)

    def stored(i: int, name: str = "node.expand") -> StoredEvent:
        props = (
            {"node_id": f"n-{i}"}
            if name == "node.expand"
            else {
                "provider": "openai",
                "model": "gpt-4o",
                "operation": "x",
                "latency_ms": 1.0,
                "status": "ok",
            }
        )
        return StoredEvent(
            event_id=str(uuid.uuid4()),
            name=name,
            version=1,
            category="ui" if name == "node.expand" else "llm",
            event_ts=now,
            received_at=now,
            session_id="s-w",
            props=props,
            sample_rate=1.0,
        )

    first = [stored(i) for i in range(5)] + [stored(9, "llm.call")]
    assert write_events(engine, first).inserted == 6
    second = first[:3] + [stored(i) for i in range(10, 14)] + [first[5], stored(15, "llm.call")]
    result = write_events(engine, second)
    assert (result.offered, result.inserted) == (9, 5)
    assert write_events(engine, second).inserted == 0
    ids = [e.event_id for e in first + second]
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT (SELECT count(*) FROM telemetry_events WHERE event_id = ANY(CAST(:i AS uuid[])))"
                " + (SELECT count(*) FROM api_calls_log WHERE call_id = ANY(CAST(:i AS uuid[])))"
            ),
            {"i": ids},
        ).scalar()
    assert rows == 11


def test_migrate_cli_grants_writers_on_current_and_future_partitions(engine: Engine) -> None:
    from click.testing import CliRunner

    from shared.storage.hot.partitions import ensure_partition
    from telemetry_cli.cli import cli

    with engine.begin() as conn:
        conn.execute(
            text(
                "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sink@p.iam') "
                'THEN CREATE ROLE "sink@p.iam"; END IF; END $$'
            )
        )
    result = CliRunner().invoke(cli, ["migrate", "--grant-to", "sink@p.iam"])
    assert result.exit_code == 0, result.output
    assert "writers: sink@p.iam" in result.output
    with engine.begin() as conn:
        ensure_partition(conn, "telemetry_events", date(2031, 1, 1))
    with engine.connect() as conn:
        for table in ("telemetry_events", "api_calls_log", "telemetry_events_p20310101"):
            assert conn.execute(
                text("SELECT has_table_privilege('sink@p.iam', :t, 'INSERT')"), {"t": table}
            ).scalar()
        assert not conn.execute(
            text("SELECT has_table_privilege('sink@p.iam', 'telemetry_events', 'DELETE')")
        ).scalar()
    bad = CliRunner().invoke(cli, ["migrate", "--grant-to", 'x"y'])
    assert bad.exit_code == 1 and "not a usable role name" in bad.output
