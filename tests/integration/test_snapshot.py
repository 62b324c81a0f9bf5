"""The snapshot on the real PostgreSQL and GCS emulator: exactly the hot rows, verified, typed."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from sqlalchemy import Engine, text

from shared.contract.registry import default_registry
from shared.storage.hot.engine import make_engine
from shared.storage.hot.writer import write_events
from shared.storage.warm import objects
from shared.storage.warm.catalog import SnapshotAlreadyRunning
from shared.storage.warm.snapshot import Snapshotter
from tests.integration.tiers import Warm

pytestmark = pytest.mark.integration


def hot_ids(engine: Engine, table: str) -> list[str]:
    column = "event_id" if table == "telemetry_events" else "call_id"
    with engine.connect() as conn:
        return [str(r[0]) for r in conn.execute(text(f"SELECT {column} FROM {table}"))]


def test_snapshot_holds_exactly_the_hot_rows_typed(warm: Warm, make_events) -> None:
    events = make_events(30) + make_events(5, llm=True)
    write_events(warm.engine, events)
    runs = warm.snapshotter().run()
    assert sum(r.rows for r in runs) == len(events)
    for table in ("telemetry_events", "api_calls_log"):
        assert sorted(warm.warm_ids(table)) == sorted(hot_ids(warm.engine, table))
    (file,) = warm.files("telemetry_events")
    assert file["event_date"] == events[0].event_ts.date()
    assert file["object_name"].startswith(
        f"analytics/telemetry_events/event_date={events[0].event_ts.date().isoformat()}/"
    )
    again = warm.snapshotter().run()
    assert sum(r.rows for r in again) == 0 and len(warm.files("telemetry_events")) == 1
    blob = warm.bucket.get_blob(file["object_name"])
    path = warm.tmp / "f.parquet"
    blob.download_to_filename(str(path))
    types = dict(
        duckdb.sql(
            f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM '{path}')"
        ).fetchall()
    )
    assert types["props_depth"] == "BIGINT" and types["props_duration_ms"] == "DOUBLE"
    assert types["event_ts"] == "TIMESTAMP WITH TIME ZONE" and types["event_id"] == "VARCHAR"
    assert "props" not in types and "stored_seq" not in types


def test_an_event_48h_late_lands_in_its_own_day(warm: Warm, make_events) -> None:
    write_events(warm.engine, make_events(3))
    warm.snapshotter().run()
    late = [
        e.__class__(
            **{
                **{f: getattr(e, f) for f in e.__struct_fields__},
                "event_ts": e.event_ts - timedelta(hours=48),
            }
        )
        for e in make_events(2)
    ]
    write_events(warm.engine, late)
    (run, _) = warm.snapshotter().run()
    days = {f.day for f in run.files}
    assert days == {late[0].event_ts.date()}
    assert sorted(warm.warm_ids("telemetry_events")) == sorted(
        hot_ids(warm.engine, "telemetry_events")
    )


def test_a_transaction_open_across_a_run_is_not_missed(warm: Warm, make_events) -> None:
    """Regression (posthog#25850): a row whose transaction commits after a run read past it."""
    early = make_events(2)
    write_events(warm.engine, early)
    held = make_events(1)
    raw = warm.engine.raw_connection()
    try:
        cursor = raw.cursor()
        event = held[0]
        cursor.execute(
            "INSERT INTO telemetry_events (event_id, name, version, category, event_ts, "
            "received_at, session_id, props, sample_rate) VALUES (%s, %s, 1, %s, %s, %s, %s, "
            "'{}'::jsonb, 1.0)",
            (
                event.event_id,
                event.name,
                event.category,
                event.event_ts,
                event.received_at,
                event.session_id,
            ),
        )
        after = make_events(2)
        write_events(warm.engine, after)  # committed while the first is still open
        first = warm.snapshotter().run_table("telemetry_events")
        assert first.rows == 2  # only what precedes the open transaction
        raw.commit()
    finally:
        raw.close()
    second = warm.snapshotter().run_table("telemetry_events")
    assert second.rows == 3
    ids = warm.warm_ids("telemetry_events")
    assert sorted(ids) == sorted(hot_ids(warm.engine, "telemetry_events")) and len(ids) == 5


@pytest.mark.parametrize("stage", ["exported", "uploaded", "before_record"])
def test_a_crash_at_any_stage_then_a_rerun_leaves_each_row_in_exactly_one_file(
    warm: Warm, make_events, monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    write_events(warm.engine, make_events(10))
    crash = RuntimeError(f"crash {stage}")
    if stage == "exported":
        original = objects.upload_create_only

        def upload(*args: Any, **kwargs: Any) -> Any:
            raise crash
    elif stage == "uploaded":
        original = objects.upload_create_only

        def upload(*args: Any, **kwargs: Any) -> Any:  # uploaded, then the crash
            original(*args, **kwargs)
            raise crash
    else:
        from shared.storage.warm import snapshot as module

        original = module.Snapshotter._record

        def upload(*args: Any, **kwargs: Any) -> Any:
            raise crash

    target = {
        "exported": (objects, "upload_create_only"),
        "uploaded": (objects, "upload_create_only"),
    }
    owner, name = target.get(stage, (Snapshotter, "_record"))
    monkeypatch.setattr(owner, name, upload)
    with pytest.raises(RuntimeError, match="crash"):
        warm.snapshotter().run_table("telemetry_events")
    monkeypatch.setattr(owner, name, original)
    write_events(warm.engine, make_events(4))  # new rows meanwhile: the rerun resumes its range
    resumed = warm.snapshotter().run_table("telemetry_events")
    assert resumed.resumed and resumed.rows == 10
    warm.snapshotter().run_table("telemetry_events")
    ids = warm.warm_ids("telemetry_events")
    assert sorted(ids) == sorted(hot_ids(warm.engine, "telemetry_events")) and len(ids) == 14


def test_a_second_concurrent_run_is_refused(warm: Warm) -> None:
    with warm.engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(hashtext('telemetry-snapshot:api_calls_log'))"))
        with pytest.raises(SnapshotAlreadyRunning, match="already running"):
            warm.snapshotter().run_table("api_calls_log")
        conn.execute(text("SELECT pg_advisory_unlock_all()"))


def test_dry_run_writes_nothing(warm: Warm, make_events) -> None:
    write_events(warm.engine, make_events(4))
    (events, _) = warm.snapshotter().run(dry_run=True)
    assert events.rows == 4 and events.files == [] and events.planned
    assert list(warm.bucket.list_blobs()) == []
    with warm.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM snapshot_runs")).scalar() == 0


@pytest.fixture
def warm_env(warm: Warm, monkeypatch: pytest.MonkeyPatch) -> Iterator[Warm]:
    """The warm fixture's database and bucket in the environment (the CLI and function read it)."""
    from shared.settings import reset_settings
    from shared.storage.hot.engine import dispose_engine

    monkeypatch.setenv("DATABASE_URL", warm.settings.database_url.get_secret_value())
    monkeypatch.setenv("TELEMETRY_BUCKET", warm.settings.telemetry_bucket)
    reset_settings()
    dispose_engine()
    yield warm
    dispose_engine()


def test_cli_snapshot_and_verify_find_a_lost_file_and_a_changed_row(
    warm_env: Warm, make_events
) -> None:
    from click.testing import CliRunner

    from telemetry_cli.cli import cli

    write_events(warm_env.engine, make_events(6) + make_events(1, llm=True))
    runner = CliRunner()
    dry = runner.invoke(cli, ["snapshot", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "telemetry_events: would write 6 rows in 1 files" in dry.output
    done = runner.invoke(cli, ["snapshot"])
    assert done.exit_code == 0, done.output
    assert "telemetry_events: wrote 6 rows in 1 files" in done.output
    assert "api_calls_log: wrote 1 rows in 1 files" in done.output
    verified = runner.invoke(cli, ["snapshot", "verify"])
    assert verified.exit_code == 0, verified.output
    assert "2 table-days compared, 0 mismatches" in verified.output
    with warm_env.engine.begin() as conn:  # a hot row is lost behind the watermark
        conn.execute(
            text(
                "DELETE FROM telemetry_events WHERE event_id = (SELECT event_id FROM telemetry_events LIMIT 1)"
            )
        )
    (calls,) = warm_env.files("api_calls_log")
    warm_env.bucket.blob(calls["object_name"]).delete()
    broken = runner.invoke(cli, ["snapshot", "verify"])
    assert broken.exit_code == 1
    assert "hot 5 rows, warm 6 rows" in broken.output
    assert f"{calls['object_name']} is missing" in broken.output


def test_the_function_answers_runs_conflicts_and_bad_requests(
    warm_env: Warm, make_events, function_server, tmp_path: Path, services
) -> None:
    import json
    import os
    import urllib.error
    import urllib.request

    def post(url: str, body: bytes) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(url, data=body, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=180) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    write_events(warm_env.engine, make_events(3))
    env = {
        **services.env(),
        "DATABASE_URL": os.environ["DATABASE_URL"],
        "TELEMETRY_BUCKET": os.environ["TELEMETRY_BUCKET"],
    }
    with function_server("snapshot", env, tmp_path) as url:
        status, body = post(url, b'{"tables": ["telemetry_events"]}')
        assert status == 200 and body["tables"][0]["rows"] == 3
        assert post(url, b"[1]")[0] == 400
        assert post(url, b'{"tables": ["users"]}')[0] == 400
        with warm_env.engine.connect() as conn:
            conn.execute(
                text("SELECT pg_advisory_lock(hashtext('telemetry-snapshot:telemetry_events'))")
            )
            status, body = post(url, b"{}")
            assert status == 409 and "already running" in body["error"]
            conn.execute(text("SELECT pg_advisory_unlock_all()"))
    env["STORAGE_EMULATOR_HOST"] = "http://127.0.0.1:9"
    write_events(warm_env.engine, make_events(2))
    with function_server("snapshot", env, tmp_path) as url:
        status, body = post(url, b"{}")
    assert status == 503 and "GCS or another Google API does not answer" in body["error"]
    with warm_env.engine.connect() as conn:  # the watermark did not move; the run resumes later
        pending = conn.execute(
            text("SELECT count(*) FROM snapshot_runs WHERE state = 'pending'")
        ).scalar()
    assert pending == 1
    assert warm_env.snapshotter().run_table("telemetry_events").rows == 2


def test_a_new_prop_leaves_old_files_readable_by_name(warm: Warm, make_events) -> None:
    """Schema evolution: a prop added to the registry is a new column; files written before it
    read as NULL there, with DuckDB's union_by_name (BigQuery's external table does the same)."""
    import dataclasses

    from shared.contract.registry.loader import Registry

    registry = default_registry()
    write_events(warm.engine, make_events(3))
    Snapshotter(warm.settings, warm.engine, warm.bucket, registry).run_table("telemetry_events")
    spec = registry.get("node.expand", 1)
    schema = dict(spec.props_schema)
    schema["properties"] = {
        **schema["properties"],
        "zoom": {"type": "integer", "description": "zoom level", "minimum": 0, "maximum": 9},
    }
    evolved = Registry(
        registry.path,
        {**registry.specs, (spec.name, 1): dataclasses.replace(spec, props_schema=schema)},
    )
    newer = [
        e.__class__(
            **{**{f: getattr(e, f) for f in e.__struct_fields__}, "props": {**e.props, "zoom": 4}}
        )
        for e in make_events(2)
    ]
    write_events(warm.engine, newer)
    Snapshotter(warm.settings, warm.engine, warm.bucket, evolved).run_table("telemetry_events")
    paths = []
    for blob in warm.bucket.list_blobs(prefix="analytics/telemetry_events/"):
        path = warm.tmp / Path(blob.name).name
        blob.download_to_filename(str(path))
        paths.append(f"'{path}'")
    assert len(paths) == 2
    rows = duckdb.sql(
        f"SELECT props_zoom, count(*) FROM read_parquet([{', '.join(paths)}], union_by_name = true) "
        "GROUP BY 1 ORDER BY 1 NULLS FIRST"
    ).fetchall()
    assert rows == [(None, 3), (4, 2)]


def parity_events(make_events) -> list:
    """Events over 3 days with LLM calls of varied latency, cost and conversation."""
    events = []
    for day in range(3):
        for batch in (make_events(4), make_events(3, llm=True)):
            for i, e in enumerate(batch):
                fields = {f: getattr(e, f) for f in e.__struct_fields__}
                fields["event_ts"] = e.event_ts - timedelta(days=day)
                if e.name == "llm.call":
                    fields["props"] = {**e.props, "latency_ms": 100.0 * (day + 1) + i}
                    fields["conversation_id"] = f"c-{day % 2}"
                events.append(e.__class__(**fields))
    return events


PARITY = [
    (
        "counts by name and day",
        "SELECT name, (event_ts AT TIME ZONE 'UTC')::date AS day, count(*) FROM telemetry_events "
        "GROUP BY 1, 2 ORDER BY 1, 2",
        "SELECT name, event_date AS day, count(*) FROM telemetry_events GROUP BY 1, 2 ORDER BY 1, 2",
    ),
    (
        "p95 latency by model",
        "SELECT model, percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) FROM api_calls_log "
        "GROUP BY 1 ORDER BY 1",
        "SELECT model, quantile_cont(latency_ms, 0.95) FROM api_calls_log GROUP BY 1 ORDER BY 1",
    ),
    (
        "cost per conversation",
        "SELECT conversation_id, sum(cost_usd) FROM api_calls_log GROUP BY 1 ORDER BY 1",
        "SELECT conversation_id, sum(cost_usd) FROM api_calls_log GROUP BY 1 ORDER BY 1",
    ),
]


def _normal(rows: list) -> list:
    from decimal import Decimal

    def one(v: Any) -> Any:
        if isinstance(v, float | Decimal):
            return round(float(v), 6)
        return v

    return [tuple(one(v) for v in row) for row in rows]


@pytest.mark.parametrize(("what", "postgres_sql", "duckdb_sql"), PARITY, ids=[p[0] for p in PARITY])
def test_metric_queries_answer_the_same_from_postgres_and_the_warm_tier(
    warm: Warm, make_events, what: str, postgres_sql: str, duckdb_sql: str
) -> None:
    from shared.storage.warm.query import run_duckdb

    write_events(warm.engine, parity_events(make_events))
    warm.snapshotter().run()
    with warm.engine.connect() as conn:
        expected = _normal(list(conn.execute(text(postgres_sql)).all()))
    answer = run_duckdb(warm.settings, warm.engine, default_registry(), duckdb_sql, tier="warm")
    assert _normal(answer.rows) == expected and expected


def test_the_view_spans_both_tiers_without_a_row_twice(warm: Warm, make_events) -> None:
    from shared.storage.warm.query import run_duckdb

    write_events(warm.engine, make_events(5))
    warm.snapshotter().run()
    write_events(warm.engine, make_events(3))  # past the watermark: hot only
    count = "SELECT count(*), count(DISTINCT event_id) FROM telemetry_events"
    registry = default_registry()
    assert run_duckdb(warm.settings, warm.engine, registry, count).rows == [(8, 8)]
    assert run_duckdb(warm.settings, warm.engine, registry, count, tier="warm").rows == [(5, 5)]
    assert run_duckdb(warm.settings, warm.engine, registry, count, tier="hot").rows == [(8, 8)]


def test_the_cli_query_prints_a_table_csv_and_json(warm_env: Warm, make_events) -> None:
    import json

    from click.testing import CliRunner

    from telemetry_cli.cli import cli

    write_events(warm_env.engine, make_events(2))
    warm_env.snapshotter().run()
    sql = "SELECT count(*) AS n FROM telemetry_events"
    runner = CliRunner()
    table = runner.invoke(cli, ["query", sql])
    assert table.exit_code == 0, table.output
    assert table.stdout.splitlines()[0].strip() == "n" and "(1 rows)" in table.stdout
    assert "Task was destroyed" not in table.output
    assert runner.invoke(cli, ["query", sql, "--format", "csv"]).stdout == "n\n2\n"
    assert json.loads(runner.invoke(cli, ["query", sql, "--format", "json"]).stdout) == [{"n": 2}]


@pytest.mark.parametrize(("what", "postgres_sql", "duckdb_sql"), PARITY, ids=[p[0] for p in PARITY])
def test_the_bigquery_sql_means_the_same_when_transpiled_back(
    warm: Warm, make_events, what: str, postgres_sql: str, duckdb_sql: str
) -> None:
    """No BigQuery emulator runs offline here; the BigQuery SQL sqlglot writes is read back into
    DuckDB's dialect and run on the warm tier, and must give the same answer."""
    import sqlglot

    from shared.storage.warm.query import open_views
    from telemetry_cli.bigquery import to_bigquery

    write_events(warm.engine, parity_events(make_events))
    warm.snapshotter().run()
    bigquery_sql = to_bigquery(duckdb_sql, "proj", "telemetry")
    assert "`proj`.`telemetry`." in bigquery_sql or "proj.telemetry." in bigquery_sql
    back = sqlglot.transpile(bigquery_sql, read="bigquery", write="duckdb")[0]
    back = back.replace("proj.telemetry.", "")
    con = open_views(warm.settings, warm.engine, default_registry(), "warm")
    try:
        assert _normal(con.sql(back).fetchall()) == _normal(con.sql(duckdb_sql).fetchall())
    finally:
        con.close()


def recorded_ids(warm: Warm, table: str = "telemetry_events") -> list[str]:
    """Every id in the recorded, unretired files (what queries read)."""
    ids: list[str] = []
    for f in warm.files(table):
        path = warm.tmp / uuid.uuid4().hex
        warm.bucket.blob(f["object_name"]).download_to_filename(str(path))
        ids += [r[0] for r in duckdb.sql(f"SELECT event_id FROM read_parquet('{path}')").fetchall()]
    return ids


def test_compaction_merges_a_days_files_and_a_query_meanwhile_sees_each_row_once(
    warm: Warm, make_events
) -> None:
    from datetime import UTC, datetime

    from shared.storage.warm.compaction import compact, delete_retired
    from shared.storage.warm.query import open_views

    for _ in range(3):
        write_events(warm.engine, make_events(4))
        warm.snapshotter().run_table("telemetry_events")
    assert len(warm.files("telemetry_events")) == 3
    count = "SELECT count(*), count(DISTINCT event_id) FROM telemetry_events"
    during = open_views(warm.settings, warm.engine, default_registry(), "warm")
    try:
        (merge,) = compact(warm.settings, warm.engine, warm.bucket, "telemetry_events")
        assert merge.rows == 12 and len(merge.inputs) == 3
        assert during.sql(count).fetchall() == [(12, 12)]  # listed before: the inputs
    finally:
        during.close()
    after = open_views(warm.settings, warm.engine, default_registry(), "warm")
    try:
        assert after.sql(count).fetchall() == [(12, 12)]  # listed after: the merged file
    finally:
        after.close()
    (file,) = warm.files("telemetry_events")
    assert file["object_name"] == merge.object_name and "-compact-" in file["object_name"]
    assert sorted(recorded_ids(warm)) == sorted(hot_ids(warm.engine, "telemetry_events"))
    assert compact(warm.settings, warm.engine, warm.bucket, "telemetry_events") == []
    assert delete_retired(warm.engine, warm.bucket) == 0  # within the grace period
    later = datetime.now(UTC) + timedelta(hours=2)
    assert delete_retired(warm.engine, warm.bucket, now=later) == 3
    names = {b.name for b in warm.bucket.list_blobs(prefix="analytics/telemetry_events/")}
    assert names == {merge.object_name}


KILLER = """
import os, signal, sys
sys.path.insert(0, {root!r})
from shared.contract.registry import default_registry
from shared.settings import get_settings
from shared.storage.gcs import get_storage_client
from shared.storage.hot.engine import get_engine
from shared.storage.warm import export, objects, snapshot

stage = {stage!r}
def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

if stage == "after_export":
    original = export.export_slice
    def export_then_die(*args, **kwargs):
        original(*args, **kwargs)
        die()
    export.export_slice = export_then_die
elif stage == "mid_upload":
    class Dying:
        def __init__(self, blob):
            self.blob = blob
        def upload_from_filename(self, *args, **kwargs):
            die()
        def __getattr__(self, name):
            return getattr(self.blob, name)
    original_blob = None
    def upload_dies(bucket, name, path):
        class Bucket:
            def blob(self, *a, **k):
                return Dying(bucket.blob(*a, **k))
            def __getattr__(self, attr):
                return getattr(bucket, attr)
        return original(Bucket(), name, path)
    original = objects.upload_create_only
    objects.upload_create_only = upload_dies
else:  # after the upload, before the watermark moves
    snapshot.Snapshotter._record = die
settings = get_settings()
bucket = get_storage_client(settings).bucket(settings.telemetry_bucket)
snapshot.Snapshotter(settings, get_engine(), bucket, default_registry()).run_table("telemetry_events")
"""


def wait_for_dead_sessions_locks(engine: Engine, timeout: float = 15.0) -> None:
    """PostgreSQL ends a killed client's session (and frees its advisory locks) once it sees
    the socket close, which can take a moment after SIGKILL: wait for that, as a rerun by the
    scheduler minutes later would."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            held = conn.execute(
                text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")
            ).scalar()
        if not held:
            return
        time.sleep(0.1)
    raise AssertionError("the killed snapshot's session still holds its lock")


@pytest.mark.parametrize("stage", ["after_export", "mid_upload", "before_watermark"])
def test_sigkill_at_each_stage_then_a_rerun_leaves_each_row_in_exactly_one_file(
    warm_env: Warm, make_events, stage: str, project_dir: Path
) -> None:
    import os
    import signal
    import subprocess
    import sys

    write_events(warm_env.engine, make_events(12))
    code = KILLER.format(root=str(project_dir), stage=stage)
    child = subprocess.run([sys.executable, "-c", code], env=os.environ.copy(), check=False)
    assert child.returncode == -signal.SIGKILL
    with warm_env.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM warm_files")).scalar() == 0
    wait_for_dead_sessions_locks(warm_env.engine)
    resumed = warm_env.snapshotter().run_table("telemetry_events")  # the lock died with it
    assert resumed.resumed and resumed.rows == 12
    ids = recorded_ids(warm_env)
    assert sorted(ids) == sorted(hot_ids(warm_env.engine, "telemetry_events")) and len(ids) == 12
    assert sorted(warm_env.warm_ids("telemetry_events")) == sorted(ids)  # no stray object


def test_the_erasure_index_names_the_files_that_hold_a_person(warm: Warm, make_events) -> None:
    from shared.storage.warm.catalog import candidate_files

    first, second = make_events(3), make_events(3)
    write_events(warm.engine, first)
    warm.snapshotter().run_table("telemetry_events")
    person = "cd" * 32
    second = [
        e.__class__(**{**{f: getattr(e, f) for f in e.__struct_fields__}, "user_key": person})
        for e in second
    ]
    write_events(warm.engine, second)
    warm.snapshotter().run_table("telemetry_events")
    names = [f["object_name"] for f in warm.files("telemetry_events")]
    assert len(names) == 2
    holding = candidate_files(warm.engine, [person])
    assert ("telemetry_events", names[1]) in holding
    assert ("telemetry_events", names[0]) not in holding  # the filter rules it out
    with warm.engine.connect() as conn:
        counts = conn.execute(text("SELECT user_keys FROM warm_files ORDER BY object_name")).all()
    assert [c[0] for c in counts] == [1, 1]  # make_events' key, then the person's


def test_a_file_that_fails_a_check_is_deleted_and_written_again(
    warm: Warm, make_events, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_events(warm.engine, make_events(5))
    calls = {"n": 0}
    original = objects.upload_create_only

    def failing_once(bucket: Any, name: str, path: Path) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:  # a stranger's bytes already sit under the name
            bucket.blob(name).upload_from_string(b"not the file", if_generation_match=0)
        stored = original(bucket, name, path)
        if calls["n"] == 1:  # and then a check fails: the object is deleted, never recorded
            objects.delete_object(bucket, stored)
            raise objects.VerificationFailed(f"{name}: simulated check failure")
        return stored

    monkeypatch.setattr(objects, "upload_create_only", failing_once)
    run = warm.snapshotter().run_table("telemetry_events")
    assert run.rows == 5 and calls["n"] == 2
    ids = warm.warm_ids("telemetry_events")
    assert sorted(ids) == sorted(hot_ids(warm.engine, "telemetry_events")) and len(ids) == 5


def test_postgres_down_is_one_clear_error(warm: Warm) -> None:
    from shared.errors import ServiceUnavailable

    dead = make_engine("postgresql+pg8000://nobody@127.0.0.1:1/none", pre_ping=False)
    snapshotter = Snapshotter(warm.settings, dead, warm.bucket, default_registry())
    with pytest.raises(ServiceUnavailable, match="PostgreSQL"):
        snapshotter.run_table("telemetry_events")
    dead.dispose()
    assert list(warm.bucket.list_blobs()) == []


def test_verification_failed_when_an_erasure_began_while_the_snapshot_exported(
    warm: Warm, make_events, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the chaos run: an erasure that began between the snapshot's count and its
    export took its person's rows out of the range (``range_where``), the export held fewer
    rows than counted, and the run failed with "rows changed while exporting" (500) until a
    later run. Now the day is counted and written again, without the erased person."""
    import msgspec

    from shared.storage.hot.suppression import suppress
    from shared.storage.warm import export

    erased = make_events(4)
    others = [msgspec.structs.replace(e, user_key=None) for e in make_events(3)]
    write_events(warm.engine, erased + others)
    original = export.export_slice
    calls = {"n": 0}

    def erasure_begins_first(con: Any, piece: Any, columns: Any, path: Path) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            key = str(erased[0].user_key)
            with warm.engine.begin() as conn:
                conn.execute(
                    text(
                        "INSERT INTO erasure_requests (request_id, user_keys, persons, stage) "
                        "VALUES ('er-chaos', ARRAY[:k], 1, 'hot')"
                    ),
                    {"k": key},
                )
                suppress(conn, "er-chaos", [key])
        original(con, piece, columns, path)

    monkeypatch.setattr(export, "export_slice", erasure_begins_first)
    run = warm.snapshotter().run_table("telemetry_events")
    assert calls["n"] == 2 and run.rows == 3
    assert sorted(warm.warm_ids("telemetry_events")) == sorted(e.event_id for e in others)
