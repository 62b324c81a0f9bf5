"""Snapshot: new hot-tier rows into verified Parquet in the warm tier (HTTP, Cloud Scheduler).

Entry point ``snapshot``. Thin: read the request, run :class:`Snapshotter`, map the outcome to a
status. ``POST`` with an optional JSON body ``{"tables": [...], "dry_run": false}``; with
``"compact": true`` it compacts the tables' small files instead (the weekly job) and deletes
files retired past their grace period. Answers 200
with what each table's run wrote, 409 when a run of a table is already in progress, 503 when
PostgreSQL or GCS cannot be reached (the watermark is then unchanged, and the next run resumes).
Private: Cloud Scheduler calls it with an OIDC token, and Cloud Run checks the token.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

import flask
import functions_framework
import msgspec

from shared.http import Answer, answer_request, decode_action, failure_answer
from shared.storage.layout import EventTable

if TYPE_CHECKING:
    from shared.storage.warm.snapshot import Snapshotter

logger = logging.getLogger("snapshot")
_lock = threading.Lock()
_snapshotter: Snapshotter | None = None


def get_snapshotter() -> Snapshotter:
    """The instance's snapshotter, built on first use."""
    global _snapshotter
    if _snapshotter is None:
        with _lock:
            if _snapshotter is None:
                from shared.contract.registry import default_registry
                from shared.observability.log import configure_logging
                from shared.settings import get_settings
                from shared.storage.gcs import get_storage_client
                from shared.storage.hot.engine import get_engine
                from shared.storage.warm.snapshot import Snapshotter

                settings = get_settings()
                configure_logging(settings.telemetry_log_level)
                bucket = get_storage_client(settings).bucket(settings.telemetry_bucket)
                _snapshotter = Snapshotter(settings, get_engine(), bucket, default_registry())
    return _snapshotter


class SnapshotRequest(msgspec.Struct, forbid_unknown_fields=True):
    """What a call asks for (every field may be left out: all tables, a real run)."""

    tables: list[EventTable] | None = None
    dry_run: bool = False
    compact: bool = False


def handle(method: str, body: bytes) -> Answer:
    """Run the snapshot a request asks for; never raises."""
    from shared.storage.failures import classify_failure
    from shared.storage.layout import EVENT_TABLES

    request = decode_action(method, body, [SnapshotRequest], default=SnapshotRequest)
    if isinstance(request, Answer):
        return request
    tables: list[str] = list(request.tables or EVENT_TABLES)
    action = "compact" if request.compact else "snapshot"
    try:
        if request.compact:
            return Answer(200, {"merged": _compact(tables)})
        runs = get_snapshotter().run(tables, dry_run=request.dry_run)
    except Exception as exc:
        note = "nothing was recorded, the next run resumes"
        return failure_answer("snapshot", action, classify_failure(exc), logger, note)
    return Answer(200, {"tables": [run.to_json() for run in runs]})


def _compact(tables: list[str]) -> list[dict[str, Any]]:
    from shared.storage.warm.compaction import compact, delete_retired

    snapshotter = get_snapshotter()
    merged = []
    for table in tables:
        for merge in compact(snapshotter.settings, snapshotter.engine, snapshotter.bucket, table):
            merged.append(
                {"object": merge.object_name, "inputs": len(merge.inputs), "rows": merge.rows}
            )
    deleted = delete_retired(snapshotter.engine, snapshotter.bucket)
    logger.info("compaction done", extra={"merged": len(merged), "deleted": deleted})
    return merged


@functions_framework.http
def snapshot(request: flask.Request) -> Any:
    """Run a snapshot of the event tables."""
    from shared.settings import get_settings

    return answer_request(request, handle, get_settings().google_cloud_project)


def reset() -> None:
    """Forget the snapshotter (tests change settings between cases)."""
    global _snapshotter
    with _lock:
        _snapshotter = None
