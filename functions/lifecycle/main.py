"""Lifecycle: retention on every tier, GDPR erasure, archive and audit checks (HTTP).

Entry point ``lifecycle``. Private: Cloud Scheduler calls it with an OIDC token (daily
retention), operators with theirs; Cloud Run checks the token. ``POST`` a JSON body naming an
action:

* ``{"action": "retention", "dry_run": false}``: partitions ahead, hot/warm/cold retention, and
  any erasure a crash left unfinished is resumed;
* ``{"action": "erase", "user_ids": ["…"]}``: erase people from every tier; answers the receipt
  (an unknown person gets a receipt of zeros);
* ``{"action": "erase_status" | "erase_verify", "request_id": "er-…"}``;
* ``{"action": "archive_verify", "deep": false}`` and ``{"action": "audit_verify"}``.

Each action's body is a typed struct (below): a field of the wrong type, or one the action does
not have, is refused with a 400 that names it.

Answers 200 with the result, 400 naming what is wrong with the request, 404 for an unknown
erasure request, 409 when the same erasure is already running, 503 with ``Retry-After`` when
PostgreSQL or GCS cannot be reached (the work resumes on the next call), 500 otherwise. Raw user
ids are never logged.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import flask
import functions_framework
import msgspec

from shared.http import Answer, action_name, answer_request, decode_action, failure_answer

if TYPE_CHECKING:  # imported where used: a cold start loads only the web framework
    from shared.storage.erasure import ErasureRequest
    from shared.storage.lifecycle import Lifecycle

logger = logging.getLogger("lifecycle")
_lock = threading.Lock()
_lifecycle: Lifecycle | None = None


def get_lifecycle() -> Lifecycle:
    """The instance's lifecycle, built on first use."""
    global _lifecycle
    if _lifecycle is None:
        with _lock:
            if _lifecycle is None:
                from shared.observability.log import configure_logging
                from shared.settings import get_settings
                from shared.storage.lifecycle import Lifecycle

                settings = get_settings()
                configure_logging(settings.telemetry_log_level)
                _lifecycle = Lifecycle.from_settings(settings)
    return _lifecycle


def _request_json(request: ErasureRequest) -> dict[str, Any]:
    return {"request_id": request.request_id, "stage": request.stage, "receipt": request.receipt}


class Retention(msgspec.Struct, tag_field="action", tag="retention", forbid_unknown_fields=True):
    """Partitions ahead, hot/warm/cold retention, then unfinished erasures resumed."""

    dry_run: bool = False


class Erase(msgspec.Struct, tag_field="action", tag="erase", forbid_unknown_fields=True):
    """Erase people from every tier; answered with the receipt."""

    user_ids: list[str]


class EraseStatus(
    msgspec.Struct, tag_field="action", tag="erase_status", forbid_unknown_fields=True
):
    """Where an erasure request stands."""

    request_id: str


class EraseVerify(
    msgspec.Struct, tag_field="action", tag="erase_verify", forbid_unknown_fields=True
):
    """What every tier still holds of a request's people."""

    request_id: str


class ArchiveVerify(
    msgspec.Struct, tag_field="action", tag="archive_verify", forbid_unknown_fields=True
):
    """Check every archive against its manifest (``deep`` also reads every object)."""

    deep: bool = False


class AuditVerify(
    msgspec.Struct, tag_field="action", tag="audit_verify", forbid_unknown_fields=True
):
    """Check the audit log's hash chain."""


def _retention(body: Retention) -> Answer:
    lifecycle = get_lifecycle()
    from shared.pubsub.alerts import alert_sender

    report = lifecycle.retention(alert=alert_sender(lifecycle.settings)).run(dry_run=body.dry_run)
    resumed = []
    if not body.dry_run:
        eraser = lifecycle.eraser()
        for request_id in eraser.unfinished():
            resumed.append(_request_json(eraser.run(request_id)))
    return Answer(200, {**report.to_json(), "erasures_resumed": resumed})


def _erase(body: Erase) -> Answer:
    request = get_lifecycle().eraser().erase(body.user_ids)
    return Answer(200, _request_json(request))


def _erase_status(body: EraseStatus) -> Answer:
    from shared.storage.erasure import check_request_id

    request_id = check_request_id(body.request_id)
    return Answer(200, _request_json(get_lifecycle().eraser().status(request_id)))


def _erase_verify(body: EraseVerify) -> Answer:
    from shared.storage.erasure import check_request_id

    request_id = check_request_id(body.request_id)
    found = get_lifecycle().eraser().verify(request_id)
    return Answer(
        200, {"request_id": request_id, "remaining": found, "clean": not any(found.values())}
    )


def _archive_verify(body: ArchiveVerify) -> Answer:
    from shared.storage.cold.verify import verify_archives

    lifecycle = get_lifecycle()
    report = verify_archives(lifecycle.engine, lifecycle.bucket, deep=body.deep)
    problems = [str(p) for p in report.problems]
    return Answer(
        200, {"manifests": report.manifests, "objects": report.objects, "problems": problems}
    )


def _audit_verify(_body: AuditVerify) -> Answer:
    from shared.storage import audit

    checked, broken = audit.verify_chain(get_lifecycle().engine)
    return Answer(200, {"entries": checked, "broken": str(broken) if broken else None})


ACTIONS: dict[type[Any], Callable[[Any], Answer]] = {
    Retention: _retention,
    Erase: _erase,
    EraseStatus: _erase_status,
    EraseVerify: _erase_verify,
    ArchiveVerify: _archive_verify,
    AuditVerify: _audit_verify,
}


def handle(method: str, body: bytes) -> Answer:
    """Run the action a request names; never raises."""
    from shared.storage.failures import classify_failure

    request = decode_action(method, body, list(ACTIONS))
    if isinstance(request, Answer):
        return request
    try:
        return ACTIONS[type(request)](request)
    except Exception as exc:
        return failure_answer(
            "lifecycle",
            action_name(request),
            classify_failure(exc),
            logger,
            "the work resumes on the next call",
        )


@functions_framework.http
def lifecycle(request: flask.Request) -> Any:
    """Run one lifecycle action."""
    from shared.settings import get_settings

    return answer_request(request, handle, get_settings().google_cloud_project)


def reset() -> None:
    """Forget the lifecycle (tests change settings between cases)."""
    global _lifecycle
    with _lock:
        _lifecycle = None
