"""GDPR erasure: a person removed from every tier in minutes, with a receipt.

A request names people by their raw user ids; at once each becomes their pseudonyms under every
key ever listed (``TELEMETRY_PSEUDONYM_KEY``, key rotation), and the raw ids go no further: not
into PostgreSQL, the logs, the audit log or the receipt. The request id is derived from the
pseudonyms, so asking again for the same people finds the same request (a no-op once done).

Stages, each recorded in ``erasure_requests`` so that a crash at any point followed by a rerun
finishes the job. Each is one tier's own erase operation; this module only runs them in order:

1. **suppress** (with the request itself): the pseudonyms go on the suppression list, which the
   sink and the snapshot check; a late event is never stored;
2. **hot** (``hot/erase.py``): the people's rows are deleted;
3. **warm** (``warm/erase.py``): only the files whose index may hold them are opened, only those
   that hold them are rewritten, each new file verified before the old one goes;
4. **cold** (``cold/shred.py``): their conversations' data keys are destroyed.

Each tier operation adds its counts to the request's receipt (``receipt.py``) in the
transaction that did the work. Every stage appends to the audit log; the receipt (counts per
tier, files opened and rewritten, keys destroyed, start, end, duration) is the request's and the
final audit entry's. :meth:`Eraser.verify` asks each tier what remains of the people.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, text

from shared.errors import AlreadyRunning, ContractViolation, TerminalError
from shared.policy.privacy import Pseudonymiser
from shared.settings import Settings
from shared.storage import audit
from shared.storage.cold import shred
from shared.storage.hot import erase as hot_erase
from shared.storage.hot import suppression
from shared.storage.layout import EVENT_TABLES
from shared.storage.receipt import ErasureReceipt
from shared.storage.warm import erase as warm_erase

logger = logging.getLogger(__name__)

REQUEST_ID = re.compile(r"^er-[0-9a-f]{20}$")
#: Most people one request may name (a batch is one pass over the warm tier).
MAX_PERSONS = 10_000
_LOAD = (
    "SELECT request_id, user_keys, persons, stage, receipt FROM erasure_requests "
    "WHERE request_id = :r"
)
_LOAD_FOR_UPDATE = _LOAD + " FOR UPDATE"


class ErasureRunning(AlreadyRunning):
    """Another process is running this request right now."""


class UnknownRequest(TerminalError):
    """No erasure request has this id."""

    http_status = 404


@dataclass
class ErasureRequest:
    """A request and where it stands."""

    request_id: str
    user_keys: list[str]
    persons: int
    stage: str
    receipt: dict[str, Any] = field(default_factory=dict)
    created: bool = False

    @property
    def done(self) -> bool:
        """True once every tier is erased."""
        return self.stage == "done"


def request_id_for(user_keys: Sequence[str]) -> str:
    """The request id of a set of pseudonyms (the same people, the same request)."""
    digest = hashlib.sha256("\n".join(sorted(set(user_keys))).encode()).hexdigest()
    return f"er-{digest[:20]}"


def check_request_id(value: str) -> str:
    """``value`` if it is a request id, else a :class:`ContractViolation` saying so."""
    if not isinstance(value, str) or not REQUEST_ID.match(value):
        raise ContractViolation("a request id looks like er- and 20 hex digits")
    return value


def validate_user_ids(user_ids: Any) -> list[str]:
    """The user ids of a request, or a :class:`ContractViolation` naming what is wrong."""
    if not isinstance(user_ids, list | tuple) or not user_ids:
        raise ContractViolation("user_ids must be a non-empty list of strings")
    if len(user_ids) > MAX_PERSONS:
        raise ContractViolation(f"at most {MAX_PERSONS} people per request, not {len(user_ids)}")
    for index, value in enumerate(user_ids):
        if not isinstance(value, str) or not 1 <= len(value) <= 256:
            raise ContractViolation(f"user_ids[{index}] must be a string of 1 to 256 characters")
    return sorted(set(user_ids))


def _initial_receipt(request_id: str, persons: int, keys: int) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "persons": persons,
        "pseudonyms_searched": keys,
        "hot": dict.fromkeys(EVENT_TABLES, 0),
        "warm": warm_erase.WarmCounts().to_json(),
        "cold": shred.ColdCounts().to_json(),
        "started_at": datetime.now(UTC).isoformat(),
        "finished_at": None,
        "duration_s": None,
    }


class Eraser:
    """Submits, runs, resumes and verifies erasure requests."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        bucket: Any,
        pseudonymiser: Pseudonymiser,
        progress: Callable[[str], object] | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.bucket = bucket
        self.pseudonymiser = pseudonymiser
        self.progress = progress

    def _report(self, request_id: str, stage: str, message: str, **counts: int) -> None:
        """Progress: a structured log line, and a line for the CLI."""
        logger.info("erasure progress", extra={"request_id": request_id, "stage": stage, **counts})
        if self.progress is not None:
            self.progress(f"{stage}: {message}")

    # -- requests --------------------------------------------------------------------------
    def pseudonyms(self, user_ids: Sequence[str]) -> list[str]:
        """Every pseudonym of the people, under every key ever listed."""
        keys = {k for uid in user_ids for k in self.pseudonymiser.all_pseudonyms(uid).values()}
        return sorted(keys)

    def submit(self, user_ids: Any) -> ErasureRequest:
        """Record a request and suppress its people (idempotent: the same people, the same
        request)."""
        people = validate_user_ids(user_ids)
        keys = self.pseudonyms(people)
        request_id = request_id_for(keys)
        with self.engine.begin() as conn:
            existing = self._load(conn, request_id)
            if existing is not None:
                return existing
            conn.execute(
                text(
                    "INSERT INTO erasure_requests (request_id, user_keys, persons, stage, receipt) "
                    "VALUES (:r, :k, :p, 'hot', CAST(:receipt AS jsonb)) "
                    "ON CONFLICT (request_id) DO NOTHING"
                ),
                {
                    "r": request_id,
                    "k": keys,
                    "p": len(people),
                    "receipt": orjson.dumps(
                        _initial_receipt(request_id, len(people), len(keys))
                    ).decode(),
                },
            )
            added = suppression.suppress(conn, request_id, keys)
            audit.append(
                conn,
                "erasure.requested",
                request_id,
                "GDPR erasure request",
                "suppression list: the sink and the snapshot drop these pseudonyms",
                {"persons": len(people), "pseudonyms": len(keys), "newly_suppressed": added},
            )
            request = self._load(conn, request_id)
        assert request is not None
        request.created = True
        logger.info("erasure requested", extra={"request_id": request_id, "persons": len(people)})
        return request

    def status(self, request_id: str) -> ErasureRequest:
        """The request as it stands; :class:`UnknownRequest` if there is none."""
        check_request_id(request_id)
        with self.engine.connect() as conn:
            request = self._load(conn, request_id)
        if request is None:
            raise UnknownRequest(f"no erasure request {request_id}")
        return request

    def unfinished(self) -> list[str]:
        """Ids of the requests a crash left unfinished, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT request_id FROM erasure_requests WHERE stage <> 'done' "
                    "ORDER BY created_at"
                )
            )
            return [str(r[0]) for r in rows]

    @staticmethod
    def _load(conn: Connection, request_id: str, lock: bool = False) -> ErasureRequest | None:
        query = _LOAD_FOR_UPDATE if lock else _LOAD
        row = conn.execute(text(query), {"r": request_id}).first()
        if row is None:
            return None
        receipt = row.receipt if isinstance(row.receipt, dict) else orjson.loads(row.receipt)
        return ErasureRequest(
            row.request_id, list(row.user_keys), int(row.persons), row.stage, receipt
        )

    # -- running ---------------------------------------------------------------------------
    def erase(self, user_ids: Any) -> ErasureRequest:
        """Submit and run a request to the end; the finished request with its receipt."""
        return self.run(self.submit(user_ids).request_id)

    def run(self, request_id: str) -> ErasureRequest:
        """Run (or resume) a request to the end; a finished request is returned as it is."""
        request = self.status(request_id)
        if request.done:
            return request
        with self._running(request_id):
            started = time.monotonic()
            request = self.status(request_id)
            if request.stage == "hot":
                self._hot(request)
            if request.stage == "warm":
                self._warm(request)
            if request.stage == "cold":
                self._cold(request)
            request = self.status(request_id)
        logger.info(
            "erasure done",
            extra={
                "request_id": request_id,
                "seconds": round(time.monotonic() - started, 3),
                "hot_rows": sum(request.receipt["hot"].values()),
                "files_rewritten": request.receipt["warm"]["files_rewritten"],
                "keys_destroyed": request.receipt["cold"]["keys_destroyed"],
            },
        )
        return request

    @contextlib.contextmanager
    def _running(self, request_id: str) -> Iterator[None]:
        key = {"k": f"telemetry-erasure:{request_id}"}
        with self.engine.connect() as lock:
            held = lock.execute(text("SELECT pg_try_advisory_lock(hashtext(:k))"), key).scalar()
            lock.commit()
            if not held:
                raise ErasureRunning(f"erasure {request_id} is already running")
            try:
                yield
            finally:
                lock.execute(text("SELECT pg_advisory_unlock(hashtext(:k))"), key)
                lock.commit()

    def _advance(
        self, conn: Connection, request: ErasureRequest, stage: str, verified_by: str
    ) -> None:
        conn.execute(
            text("UPDATE erasure_requests SET stage = :s WHERE request_id = :r"),
            {"s": stage, "r": request.request_id},
        )
        done = self._load(conn, request.request_id)
        assert done is not None
        audit.append(
            conn,
            f"erasure.{request.stage}",
            request.request_id,
            "GDPR erasure",
            verified_by,
            done.receipt.get(request.stage, {}),
        )
        request.stage = stage
        request.receipt = done.receipt

    def _hot(self, request: ErasureRequest) -> None:
        deleted = hot_erase.erase(
            self.engine, request.user_keys, ErasureReceipt(request.request_id)
        )
        with self.engine.begin() as conn:
            self._advance(conn, request, "warm", "rows deleted by pseudonym in every partition")
        self._report(request.request_id, "hot", f"{sum(deleted.values())} rows deleted", **deleted)

    def _warm(self, request: ErasureRequest) -> None:
        receipt = ErasureReceipt(request.request_id)
        for table in EVENT_TABLES:
            done = warm_erase.erase_table(
                self.settings,
                self.engine,
                self.bucket,
                table,
                request.user_keys,
                receipt,
                lambda name, table=table: self._report(  # type: ignore[misc]
                    request.request_id, "warm", f"{table}: {name}"
                ),
            )
            self._report(
                request.request_id,
                "warm",
                f"{table}: {done.files_opened} files opened, {done.files_rewritten} rewritten",
                **done.to_json(),
            )
        with self.engine.begin() as conn:
            self._advance(
                conn,
                request,
                "cold",
                "each rewritten file: rows and event-id digest checked, stored CRC32C matched",
            )

    def _cold(self, request: ErasureRequest) -> None:
        receipt = ErasureReceipt(request.request_id)
        done = shred.erase(self.engine, self.bucket, request.user_keys, receipt)
        self._report(
            request.request_id,
            "cold",
            f"{done.keys_destroyed} data keys destroyed",
            keys=done.keys_destroyed,
        )
        with self.engine.begin() as conn:
            current = self._load(conn, request.request_id, lock=True)
            assert current is not None
            finished = datetime.now(UTC)
            started = datetime.fromisoformat(current.receipt["started_at"])
            receipt.set(
                conn,
                {
                    "finished_at": finished.isoformat(),
                    "duration_s": round((finished - started).total_seconds(), 3),
                },
            )
            conn.execute(
                text("UPDATE erasure_requests SET finished_at = :f WHERE request_id = :r"),
                {"f": finished, "r": request.request_id},
            )
            self._advance(
                conn,
                request,
                "done",
                "wrapped data keys destroyed in the table and the JSON manifests",
            )
            audit.append(
                conn,
                "erasure.receipt",
                request.request_id,
                "GDPR erasure finished",
                "erase verify scans every tier",
                request.receipt,
            )

    # -- verification ----------------------------------------------------------------------
    def verify(self, request_id: str) -> dict[str, int]:
        """Ask every tier what remains of the request's people (all zero when done)."""
        request = self.status(request_id)
        keys = request.user_keys
        with self.engine.connect() as conn:
            found = hot_erase.remaining(conn, keys)
        found.update(warm_erase.remaining(self.settings, self.bucket, keys))
        found.update(shred.remaining(self.engine, self.bucket, request_id, keys))
        return found
