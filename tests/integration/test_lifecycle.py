"""The lifecycle on the real PostgreSQL and GCS emulator: retention, erasure, archive, audit."""

from __future__ import annotations

import threading
import time as clock
import uuid
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import pytest
from sqlalchemy import text

from shared.contract.intake import Intake
from shared.contract.stored_event import StoredEvent
from shared.contract.validation import EventValidator
from shared.policy.privacy import Pseudonymiser
from shared.policy.retention import HOT_RETENTION_DAYS, WARM_RETENTION_DAYS
from shared.policy.sampling import SamplingPolicy
from shared.settings import DEV_PSEUDONYM_KEY, Secret, parse_keyring
from shared.storage import audit
from shared.storage.cold.archive import ArchiveKeyDestroyed
from shared.storage.cold.crypto import ArchiveTampered
from shared.storage.cold.manifest import manifest_object_name
from shared.storage.cold.verify import verify_archives
from shared.storage.erasure import Eraser
from shared.storage.hot.engine import grant_lifecycle
from shared.storage.hot.partitions import ensure_partition, list_partitions, partition_name
from shared.storage.hot.writer import write_events
from shared.storage.lifecycle import Lifecycle
from shared.storage.retention import Retention
from shared.storage.warm import erase as warm_erase
from shared.storage.warm import objects as warm_objects
from shared.storage.warm.compaction import compact
from shared.storage.warm.reconcile import reconcile
from tests.integration.tiers import Warm

pytestmark = pytest.mark.integration

#: Two keys: the person's pseudonym under the retired one must be found too.
KEYRING = "k2:second-key-for-rotation-tests," + DEV_PSEUDONYM_KEY
TODAY = date(2026, 11, 28)


def at(day: date, hour: int = 12) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=UTC)


def events(
    user: str | None, day: date, count: int, *, llm: int = 0, keyring: str = KEYRING
) -> list[StoredEvent]:
    """Stored events of one session on ``day`` (received that day), ``llm`` of them calls."""
    intake = Intake(EventValidator(), SamplingPolicy({}), Pseudonymiser(parse_keyring(keyring)))
    now = at(day)
    raw: list[dict[str, Any]] = []
    for i in range(count):
        event: dict[str, Any] = {
            "event_id": str(uuid.uuid4()),
            "name": "node.expand",
            "ts": (now - timedelta(minutes=i % 50)).isoformat(),
            "props": {"node_id": f"n-{i}", "depth": 1},
        }
        if i < llm:
            event.update(
                name="llm.call",
                props={
                    "provider": "anthropic",
                    "model": "claude-sonnet-4",
                    "operation": "bias_prefilter",
                    "latency_ms": 100.0,
                    "status": "ok",
                    "input_tokens": 10,
                    "output_tokens": 5,
                    "cost_usd": 0.001,
                    "price_version": "2026-11-01",
                },
            )
        raw.append(event)
    context: dict[str, Any] = {"session_id": f"s-{uuid.uuid4().hex[:8]}"}
    if user is not None:
        context["user_id"] = user
    result = intake.process_events(raw, context, now)
    assert len(result.accepted) == count, result.rejected
    return result.accepted


class Tiers:
    """The lifecycle over a fresh database and bucket (the snapshot's :class:`Warm`)."""

    def __init__(self, warm: Warm) -> None:
        self.warm = warm
        self.engine = warm.engine
        self.bucket = warm.bucket
        self.settings = msgspec.structs.replace(
            warm.settings,
            **{
                "telemetry_pseudonym_key": Secret(KEYRING),
                "telemetry_archive_kek": f"file:{warm.tmp / 'kek.key'}",
            },
        )
        self.lifecycle = Lifecycle(self.settings, self.engine, self.bucket)
        self.alerts: list[tuple[str, str]] = []

    def store(self, batch: list[StoredEvent]) -> None:
        with self.engine.begin() as conn:
            for day in {e.event_ts.date() for e in batch}:
                ensure_partition(conn, "telemetry_events", day)
                ensure_partition(conn, "api_calls_log", day)
        write_events(self.engine, batch)

    def snapshot(self) -> None:
        self.warm.snapshotter().run()

    def retention(self, today: date = TODAY, dry_run: bool = False) -> Any:
        def alert(name: str, severity: str, summary: str, details: Any) -> None:
            self.alerts.append((name, details["partition"]))

        retention = Retention(self.settings, self.engine, self.bucket, alert)  # type: ignore[arg-type]
        return retention.run(now=at(today, 3), dry_run=dry_run)

    def eraser(self) -> Eraser:
        return self.lifecycle.eraser()

    def hot_count(self, user_keys: list[str]) -> int:
        with self.engine.connect() as conn:
            return sum(
                int(
                    conn.execute(
                        text(f"SELECT count(*) FROM {t} WHERE user_key = ANY(:k)"),
                        {"k": user_keys},
                    ).scalar_one()
                )
                for t in ("telemetry_events", "api_calls_log")
            )

    def warm_count(self, user_keys: list[str]) -> int:
        """Rows of the keys in every object of the bucket (downloaded, recorded or not)."""
        found = 0
        for blob in self.bucket.list_blobs(prefix="analytics/"):
            path = self.warm.tmp / uuid.uuid4().hex
            blob.download_to_filename(str(path))
            listing = ", ".join(f"'{k}'" for k in user_keys)
            found += duckdb.sql(
                f"SELECT count(*) FROM read_parquet('{path}') WHERE user_key IN ({listing})"
            ).fetchone()[0]
        return found


@pytest.fixture
def tiers(warm: Warm) -> Tiers:
    return Tiers(warm)


def pseudonyms(user: str) -> list[str]:
    return sorted(Pseudonymiser(parse_keyring(KEYRING)).all_pseudonyms(user).values())


# -- retention ---------------------------------------------------------------------------------
def test_retention_boundaries_under_a_frozen_clock(tiers: Tiers) -> None:
    kept_day = TODAY - timedelta(days=HOT_RETENTION_DAYS)
    dropped_day = kept_day - timedelta(days=1)
    tiers.store(events("u-a", kept_day, 4) + events("u-a", dropped_day, 3, llm=1))
    tiers.snapshot()
    report = tiers.retention()
    actions = {(i.subject, i.action) for i in report.items}
    assert (partition_name("telemetry_events", dropped_day), "drop") in actions
    assert (partition_name("api_calls_log", dropped_day), "drop") in actions
    with tiers.engine.connect() as conn:
        names = list_partitions(conn, "telemetry_events")
    assert partition_name("telemetry_events", dropped_day) not in names
    assert partition_name("telemetry_events", kept_day) in names
    for ahead in range(8):  # created 7 days ahead of the frozen today
        assert partition_name("telemetry_events", TODAY + timedelta(days=ahead)) in names
    # The warm tier still answers for the dropped day, verified against the bucket.
    checks, mismatches = reconcile(tiers.engine, tiers.bucket, dropped_day, today=TODAY)
    assert not mismatches and sum(c.warm_rows for c in checks) == 3

    warm_kept = TODAY - timedelta(days=WARM_RETENTION_DAYS)
    warm_gone = warm_kept - timedelta(days=1)
    later = tiers.retention(today=warm_gone + timedelta(days=WARM_RETENTION_DAYS + 1))
    assert not [i for i in later.items if i.tier == "warm"]  # both days still within 180
    tiers.store([])
    report = tiers.retention(today=dropped_day + timedelta(days=WARM_RETENTION_DAYS + 1))
    warm_items = [i for i in report.items if i.tier == "warm"]
    assert {i.subject.split(" ")[1] for i in warm_items} == {dropped_day.isoformat()}
    with tiers.engine.connect() as conn:
        left = (
            conn.execute(text("SELECT DISTINCT event_date FROM warm_files ORDER BY 1"))
            .scalars()
            .all()
        )
    assert left == [kept_day]
    assert not [
        b
        for b in tiers.bucket.list_blobs(prefix="analytics/")
        if dropped_day.strftime("%Y%m%d") in b.name
    ]


def test_partition_is_never_dropped_before_its_rows_are_verified_in_the_warm_tier(
    tiers: Tiers,
) -> None:
    old = TODAY - timedelta(days=HOT_RETENTION_DAYS + 5)
    tiers.store(events("u-b", old, 5))
    report = tiers.retention()
    name = partition_name("telemetry_events", old)
    (kept,) = [i for i in report.items if i.subject == name]
    assert kept.action == "keep" and "not in the warm tier yet" in kept.reason
    assert ("retention.partition_kept", name) in tiers.alerts
    tiers.snapshot()
    # A file the warm tier records but the bucket lost: still kept.
    with tiers.engine.connect() as conn:
        obj = conn.execute(
            text("SELECT object_name FROM warm_files WHERE table_name = 'telemetry_events'")
        ).scalar_one()
    blob = tiers.bucket.get_blob(obj)
    saved = blob.download_as_bytes()
    blob.delete()
    report = tiers.retention()
    (kept,) = [i for i in report.items if i.subject == name]
    assert kept.action == "keep" and "missing" in kept.reason
    tiers.bucket.blob(obj).upload_from_string(saved)
    with tiers.engine.begin() as conn:  # the restored object has a new generation
        conn.execute(
            text("UPDATE warm_files SET generation = :g WHERE object_name = :n"),
            {"g": tiers.bucket.get_blob(obj).generation, "n": obj},
        )
    dry = tiers.retention(dry_run=True)
    (would,) = [i for i in dry.items if i.subject == name]
    assert would.action == "drop" and would.rows == 5 and would.bytes > 0
    with tiers.engine.connect() as conn:
        assert name in list_partitions(conn, "telemetry_events")  # dry: nothing changed
    report = tiers.retention()
    assert [i.action for i in report.items if i.subject == name] == ["drop"]
    assert tiers.retention().items == [i for i in tiers.retention().items if i.subject != name]


def test_rows_in_the_default_partition_get_their_day(tiers: Tiers) -> None:
    day = TODAY - timedelta(days=3)
    write_events(tiers.engine, events("u-c", day, 4))  # no partition for that day yet
    with tiers.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM telemetry_events_default")).scalar() == 4
    tiers.retention()
    with tiers.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM telemetry_events_default")).scalar() == 0
        assert partition_name("telemetry_events", day) in list_partitions(conn, "telemetry_events")


# -- erasure -----------------------------------------------------------------------------------
def seed_person(tiers: Tiers, user: str, days: int = 3) -> None:
    """The person on ``days`` days (with others), snapshotted, plus an archive."""
    batch: list[StoredEvent] = []
    for offset in range(days):
        day = TODAY - timedelta(days=offset)
        batch += events(user, day, 3, llm=1) + events("someone-else", day, 4, llm=1)
    # One day under the older key only: the key rotation case.
    batch += events(user, TODAY - timedelta(days=days), 2, keyring=DEV_PSEUDONYM_KEY)
    tiers.store(batch)
    tiers.snapshot()


def test_erasure_removes_the_person_from_every_tier_and_suppresses_late_events(
    tiers: Tiers,
) -> None:
    seed_person(tiers, "u-erase")
    store = tiers.lifecycle.archive()
    store.archive(
        "conv-erase", {"transcript.txt": "hello there", "audio.wav": b"\x00\x01"}, "u-erase"
    )
    store.archive("conv-keep", {"transcript.txt": "someone else"}, "someone-else")
    keys = pseudonyms("u-erase")
    assert tiers.hot_count(keys) == 11 and tiers.warm_count(keys) == 11
    late = events("u-erase", TODAY, 2)  # published before the erasure, delivered after it

    request = tiers.eraser().erase(["u-erase"])
    assert request.done
    receipt = request.receipt
    assert receipt["hot"] == {"telemetry_events": 8, "api_calls_log": 3}
    assert receipt["warm"]["files_rewritten"] == receipt["warm"]["files_holding"] == 7
    assert receipt["warm"]["rows_removed"] == 11
    assert receipt["cold"]["keys_destroyed"] == 1 and receipt["cold"]["objects_deleted"] == 2
    assert receipt["duration_s"] >= 0 and receipt["finished_at"]
    assert "u-erase" not in str(receipt)

    assert write_events(tiers.engine, late).suppressed == 2
    assert tiers.hot_count(keys) == 0 and tiers.warm_count(keys) == 0
    remaining = tiers.eraser().verify(request.request_id)
    assert set(remaining.values()) == {0}, remaining
    # The others are all there, hot and warm agree, and their archive still restores.
    others = pseudonyms("someone-else")
    assert tiers.hot_count(others) == tiers.warm_count(others) == 12
    assert not reconcile(tiers.engine, tiers.bucket, today=TODAY)[1]
    assert [p.name for p in store.restore("conv-keep", tiers.warm.tmp / "r")] == ["transcript.txt"]
    with pytest.raises(ArchiveKeyDestroyed, match="destroyed by erasure"):
        store.restore("conv-erase", tiers.warm.tmp / "gone")
    assert not verify_archives(tiers.engine, tiers.bucket).problems
    assert store.archive("conv-new", {"t.txt": "x"}, "u-erase").suppressed
    # Asking again is the same request, and a no-op.
    again = tiers.eraser().erase(["u-erase"])
    assert again.request_id == request.request_id and again.receipt == receipt
    assert audit.verify_chain(tiers.engine)[1] is None


def test_erasure_of_an_unknown_person_is_a_receipt_of_zeros(tiers: Tiers) -> None:
    seed_person(tiers, "u-present", days=1)
    request = tiers.eraser().erase(["nobody-by-this-id"])
    assert request.done
    assert sum(request.receipt["hot"].values()) == 0
    assert request.receipt["warm"]["files_rewritten"] == 0
    assert request.receipt["warm"]["files_opened"] == request.receipt["warm"]["false_positives"]
    assert request.receipt["cold"]["keys_destroyed"] == 0


class Crash(Exception):
    """Stands for the process dying at a chosen point."""


@pytest.mark.parametrize(
    "stage", ["after_suppress", "after_hot", "mid_warm_upload", "mid_warm_record", "mid_cold"]
)
def test_erasure_killed_at_each_stage_finishes_on_rerun(
    tiers: Tiers, stage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_person(tiers, "u-crash")
    tiers.lifecycle.archive().archive("conv-crash", {"a.txt": "x", "b.txt": "y"}, "u-crash")
    keys = pseudonyms("u-crash")
    eraser = tiers.eraser()
    calls = {"n": 0}

    def crash_on_second(original: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls["n"] += 1
            if calls["n"] == 2:
                raise Crash(stage)
            return original(*args, **kwargs)

        return wrapper

    if stage == "after_suppress":
        request = eraser.submit(["u-crash"])
    else:
        if stage == "after_hot":
            monkeypatch.setattr(Eraser, "_warm", lambda self, r: (_ for _ in ()).throw(Crash()))
        elif stage == "mid_warm_upload":
            # the verified write that erasure's rewrites go through (the warm catalog's)
            monkeypatch.setattr(
                warm_objects, "upload_create_only", crash_on_second(warm_objects.upload_create_only)
            )
        elif stage == "mid_warm_record":
            monkeypatch.setattr(warm_erase.gcs, "purge", crash_on_second(warm_erase.gcs.purge))
        elif stage == "mid_cold":
            from shared.storage.cold import shred

            monkeypatch.setattr(shred, "purge", crash_on_second(shred.purge))
        with pytest.raises(Crash):
            eraser.erase(["u-crash"])
        monkeypatch.undo()
        request = eraser.submit(["u-crash"])
    assert not request.done
    assert eraser.unfinished() == [request.request_id]
    finished = tiers.eraser().run(request.request_id)
    assert finished.done
    assert tiers.hot_count(keys) == 0 and tiers.warm_count(keys) == 0
    assert set(tiers.eraser().verify(request.request_id).values()) == {0}
    assert finished.receipt["hot"] == {"telemetry_events": 8, "api_calls_log": 3}
    assert finished.receipt["warm"]["rows_removed"] == 11
    assert finished.receipt["cold"]["keys_destroyed"] == 1
    others = pseudonyms("someone-else")
    assert tiers.hot_count(others) == tiers.warm_count(others) == 12
    assert not reconcile(tiers.engine, tiers.bucket, today=TODAY)[1]
    assert tiers.eraser().run(request.request_id).receipt == finished.receipt  # a no-op


def test_erasure_during_a_snapshot_and_compaction_resurrects_nothing(tiers: Tiers) -> None:
    """Rows stored before the erasure but not yet snapshotted, a crashed snapshot's unrecorded
    upload, and compaction inputs in their grace period: none brings the person back."""
    day = TODAY - timedelta(days=1)
    tiers.store(events("u-race", day, 3) + events("other", day, 3))
    tiers.snapshot()
    tiers.store(events("u-race", day, 2) + events("other", day, 2))
    tiers.snapshot()
    merges = compact(tiers.settings, tiers.engine, tiers.bucket, "telemetry_events")
    assert merges and len(merges[0].inputs) == 2  # the inputs are retired, still in the bucket
    tiers.store(events("u-race", day, 4) + events("other", day, 1))  # not snapshotted yet
    orphan = (
        "analytics/telemetry_events/event_date=2026-11-27/telemetry_events-20261127-1-2.parquet"
    )
    source = next(iter(tiers.bucket.list_blobs(prefix="analytics/telemetry_events/")))
    tiers.bucket.copy_blob(source, tiers.bucket, orphan)  # a crashed run's upload
    request = tiers.eraser().erase(["u-race"])
    assert request.receipt["warm"]["orphans_deleted"] == 1
    assert request.receipt["warm"]["retired_files_deleted"] == 2
    tiers.snapshot()  # the rows stored meanwhile: the person's are gone or suppressed
    keys = pseudonyms("u-race")
    assert tiers.hot_count(keys) == 0 and tiers.warm_count(keys) == 0
    assert not reconcile(tiers.engine, tiers.bucket, today=TODAY)[1]


def test_snapshot_never_exports_a_suppressed_person(tiers: Tiers) -> None:
    """Rows of a listed person that reached the hot tier (before the erasure's delete) stay
    out of the warm tier."""
    day = TODAY - timedelta(days=2)
    tiers.store(events("u-listed", day, 3) + events("other", day, 2))
    keys = pseudonyms("u-listed")
    with tiers.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO erasure_requests (request_id, user_keys, persons, stage) "
                "VALUES ('er-00000000000000000000', :k, 1, 'hot')"
            ),
            {"k": keys},
        )
        from shared.storage.hot.suppression import suppress

        suppress(conn, "er-00000000000000000000", keys)
    tiers.snapshot()
    assert tiers.warm_count(keys) == 0 and tiers.warm_count(pseudonyms("other")) == 2


# -- cold archive ------------------------------------------------------------------------------
def test_archive_verify_restore_round_trip_and_tampering(tiers: Tiers) -> None:
    store = tiers.lifecycle.archive()
    audio = bytes(range(256)) * 1000
    first = store.archive("conv-1", {"transcript.txt": "raw words", "audio.wav": audio}, "u-arch")
    assert sorted(first.written) == ["audio.wav", "transcript.txt"]
    again = store.archive("conv-1", {"transcript.txt": "raw words"}, "u-arch")
    assert again.deduplicated == ["transcript.txt"] and not again.written
    with tiers.engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM storage_manifests")).mappings().one()
    assert row["owner_key"] in pseudonyms("u-arch") and "u-arch" not in str(dict(row))
    assert len(row["objects"]) == 2 and row["wrapped_key"]
    for obj in row["objects"]:
        stored = tiers.bucket.get_blob(obj["object"]).download_as_bytes()
        assert b"raw words" not in stored and obj["object"].endswith(obj["sha256"])
    manifest = tiers.bucket.get_blob(manifest_object_name("conv-1")).download_as_bytes()
    assert b"u-arch" not in manifest and b"raw words" not in manifest

    restored = store.restore("conv-1", tiers.warm.tmp / "out")
    assert {p.name: p.read_bytes() for p in restored} == {
        "transcript.txt": b"raw words",
        "audio.wav": audio,
    }
    assert not verify_archives(tiers.engine, tiers.bucket, deep=True).problems

    target = next(o["object"] for o in row["objects"] if o["artifact"] == "audio.wav")
    tiers.bucket.blob(target).upload_from_string(b"TCA1" + b"\x00" * 40)
    problems = verify_archives(tiers.engine, tiers.bucket).problems
    assert [p.object for p in problems or []] == [target]
    with pytest.raises(ArchiveTampered, match=target):
        store.restore("conv-1", tiers.warm.tmp / "again")


# -- audit log ---------------------------------------------------------------------------------
def test_an_edit_to_the_audit_log_is_detected(tiers: Tiers) -> None:
    tiers.eraser().erase(["u-audit-1"])
    tiers.eraser().erase(["u-audit-2"])
    checked, broken = audit.verify_chain(tiers.engine)
    assert checked >= 8 and broken is None
    with pytest.raises(Exception, match="append-only"), tiers.engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET reason = 'x' WHERE seq = 3"))
    with tiers.engine.begin() as conn:  # what a table owner could still do
        conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update"))
        conn.execute(text("UPDATE audit_log SET details = '{\"persons\": 7}' WHERE seq = 3"))
    assert audit.verify_chain(tiers.engine)[1] == audit.BrokenLink(
        3, "its content was changed after it was written"
    )
    with tiers.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq = 2"))
    broken = audit.verify_chain(tiers.engine)[1]
    assert broken is not None and broken.seq == 3


def test_lifecycle_role_can_drop_partitions(tiers: Tiers) -> None:
    role = f"lifecycle_fn_{uuid.uuid4().hex[:8]}"  # roles are the cluster's, not the database's
    with tiers.engine.begin() as conn:
        conn.execute(text(f"CREATE ROLE {role} LOGIN"))
    grant_lifecycle(tiers.engine, role)
    with tiers.engine.connect() as conn:
        member = conn.execute(
            text("SELECT pg_has_role(:r, current_user, 'MEMBER')"), {"r": role}
        ).scalar()
    assert member is True


def test_erasure_while_a_snapshot_is_uploading_waits_and_resurrects_nothing(
    tiers: Tiers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The snapshot has exported the person's rows and holds the table's lock when the erasure
    starts: the erasure suppresses and deletes the hot rows at once, waits for the lock, then
    rewrites the file the snapshot records."""
    from shared.storage.warm import objects

    day = TODAY - timedelta(days=1)
    tiers.store(events("u-concurrent", day, 3) + events("other", day, 3))
    uploading, release = threading.Event(), threading.Event()
    original = objects.upload_create_only
    first = {"done": False}

    def held_upload(bucket: Any, name: str, path: Path) -> Any:
        if not first["done"] and "telemetry_events" in name:
            first["done"] = True
            uploading.set()
            assert release.wait(60)
        return original(bucket, name, path)

    monkeypatch.setattr(objects, "upload_create_only", held_upload)
    snapshot = threading.Thread(target=tiers.snapshot)
    snapshot.start()
    assert uploading.wait(60)
    outcome: dict[str, Any] = {}
    erasure = threading.Thread(
        target=lambda: outcome.update(request=tiers.eraser().erase(["u-concurrent"]))
    )
    erasure.start()
    keys = pseudonyms("u-concurrent")
    deadline = datetime.now(UTC) + timedelta(seconds=30)
    while tiers.hot_count(keys) and datetime.now(UTC) < deadline:
        clock.sleep(0.1)
    assert tiers.hot_count(keys) == 0 and erasure.is_alive()  # hot done, waiting for the lock
    release.set()
    snapshot.join(60)
    erasure.join(120)
    request = outcome["request"]
    assert request.done and request.receipt["warm"]["files_rewritten"] == 1
    assert tiers.warm_count(keys) == 0 and tiers.warm_count(pseudonyms("other")) == 3
    assert not reconcile(tiers.engine, tiers.bucket, today=TODAY)[1]


def test_retention_killed_mid_run_finishes_on_rerun(
    tiers: Tiers, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.storage.warm import expire as warm_expire

    old = TODAY - timedelta(days=WARM_RETENTION_DAYS + 3)
    for offset in range(3):
        tiers.store(events("u-old", old + timedelta(days=offset), 2))
    tiers.snapshot()
    later = TODAY
    original = warm_expire.purge
    calls = {"n": 0}

    def crashing(bucket: Any, name: str, keep: int | None = None) -> int:
        calls["n"] += 1
        if calls["n"] == 2:
            raise Crash("mid warm retention")
        return original(bucket, name, keep)

    monkeypatch.setattr(warm_expire, "purge", crashing)
    with pytest.raises(Crash):
        tiers.retention(today=later)
    monkeypatch.undo()
    tiers.retention(today=later)
    with tiers.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM warm_files")).scalar() == 0
        actions = (
            conn.execute(text("SELECT action FROM audit_log WHERE action LIKE 'retention.warm%'"))
            .scalars()
            .all()
        )
    assert len(actions) == 3  # one entry per day, none twice
    assert not list(tiers.bucket.list_blobs(prefix="analytics/"))
    assert audit.verify_chain(tiers.engine)[1] is None


def test_erasure_waits_for_a_writer_that_began_before_the_listing(tiers: Tiers) -> None:
    """A sink transaction that wrote the person's rows before the listing and commits after it:
    the erasure's delete waits for its commit, so the rows are deleted, not left behind."""
    day = TODAY - timedelta(days=1)
    tiers.store(events("other", day, 1))
    late = events("u-inflight", day, 3)
    writer = tiers.engine.connect()
    transaction = writer.begin()
    from shared.storage.hot.writer import _render, copy_into, written_columns

    for table, data in _render(late):
        copy_into(writer, table.name, written_columns(table), data)  # not yet committed
    outcome: dict[str, Any] = {}
    erasure = threading.Thread(
        target=lambda: outcome.update(request=tiers.eraser().erase(["u-inflight"]))
    )
    erasure.start()
    clock.sleep(1.0)
    assert erasure.is_alive()  # waiting for the writer
    transaction.commit()
    writer.close()
    erasure.join(60)
    assert outcome["request"].receipt["hot"]["telemetry_events"] == 3
    assert tiers.hot_count(pseudonyms("u-inflight")) == 0
