"""Lifecycle: retention on every tier, GDPR erasure, archive and audit checks (HTTP).

Entry point ``lifecycle``. Private: Cloud Scheduler calls it with an OIDC token (daily
retention), operators with theirs; Cloud Run checks the token. ``POST`` a JSON body naming an
action:

* ``{"action": "retention", "dry_run": false}``: partitions ahead, hot/warm/cold retention, and
  any erasure a crash left unfinished is resumed;
* ``{"action": "erase", "user_ids": ["…"]}``: erase people from every tier; answers the receipt
  (an unknown person gets a receipt of zeros);
* ``{"action": "erase_status" | "erase_verify", "request_id": "er-…"}``;
* ``{"action": "archive_verify"}`` and ``{"action": "audit_verify"}``.

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

from shared.http import Answer, answer_request, failure_answer, parse_action

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


def _retention(body: dict[str, Any]) -> Answer:
    lifecycle = get_lifecycle()
    dry_run = body.get("dry_run") is True
    from shared.pubsub.alerts import alert_sender

    report = lifecycle.retention(alert=alert_sender(lifecycle.settings)).run(dry_run=dry_run)
    resumed = []
    if not dry_run:
        eraser = lifecycle.eraser()
        for request_id in eraser.unfinished():
            resumed.append(_request_json(eraser.run(request_id)))
    return Answer(200, {**report.to_json(), "erasures_resumed": resumed})


def _erase(body: dict[str, Any]) -> Answer:
    request = get_lifecycle().eraser().erase(body.get("user_ids"))
    return Answer(200, _request_json(request))


def _erase_status(body: dict[str, Any]) -> Answer:
    from shared.storage.erasure import check_request_id

    request_id = check_request_id(body.get("request_id"))  # type: ignore[arg-type]
    return Answer(200, _request_json(get_lifecycle().eraser().status(request_id)))


def _erase_verify(body: dict[str, Any]) -> Answer:
    from shared.storage.erasure import check_request_id

    request_id = check_request_id(body.get("request_id"))  # type: ignore[arg-type]
    found = get_lifecycle().eraser().verify(request_id)
    return Answer(
        200, {"request_id": request_id, "remaining": found, "clean": not any(found.values())}
    )


def _archive_verify(body: dict[str, Any]) -> Answer:
    from shared.storage.cold.verify import verify_archives

    lifecycle = get_lifecycle()
    report = verify_archives(lifecycle.engine, lifecycle.bucket, deep=body.get("deep") is True)
    problems = [str(p) for p in report.problems]
    return Answer(
        200, {"manifests": report.manifests, "objects": report.objects, "problems": problems}
    )


def _audit_verify(_body: dict[str, Any]) -> Answer:
    from shared.storage import audit

    checked, broken = audit.verify_chain(get_lifecycle().engine)
    return Answer(200, {"entries": checked, "broken": str(broken) if broken else None})


ACTIONS: dict[str, Callable[[dict[str, Any]], Answer]] = {
    "retention": _retention,
    "erase": _erase,
    "erase_status": _erase_status,
    "erase_verify": _erase_verify,
    "archive_verify": _archive_verify,
    "audit_verify": _audit_verify,
}


def handle(method: str, body: bytes) -> Answer:
    """Run the action a request names; never raises."""
    from shared.storage.warm.snapshot import service_failure

    parsed = parse_action(method, body, ACTIONS)
    if isinstance(parsed, Answer):
        return parsed
    action, request = parsed
    try:
        return ACTIONS[action](request)
    except Exception as exc:
        return failure_answer(
            "lifecycle", action, service_failure(exc), logger, "the work resumes on the next call"
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
