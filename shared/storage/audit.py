"""The lifecycle's audit log: append-only and hash-chained, in PostgreSQL.

Every lifecycle action (a partition dropped, a warm file deleted, an archive expired, an erasure
requested or finished) appends one entry: what went, when, why and what verified it. Each entry's
hash covers its own fields and the hash of the entry before, so editing, deleting or reordering
any entry breaks every later link; :func:`verify_chain` names the first broken one. A trigger
refuses UPDATE, DELETE and TRUNCATE outright; the chain catches what a table owner could still do
by disabling the trigger.

Entries never carry a raw identifier or a property value: subjects are table, object and
request names, details are counts, sizes and digests.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, text

#: The ``prev_hash`` of the first entry.
GENESIS = "0" * 64
_LOCK = "telemetry-audit-log"


@dataclass(frozen=True)
class AuditEntry:
    """One entry of the log."""

    seq: int
    at: datetime
    action: str
    subject: str
    reason: str
    verified_by: str
    details: Mapping[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class BrokenLink:
    """The first entry whose hash or link does not hold."""

    seq: int
    problem: str

    def __str__(self) -> str:
        return f"entry {self.seq}: {self.problem}"


def entry_hash(
    seq: int,
    at: datetime,
    action: str,
    subject: str,
    reason: str,
    verified_by: str,
    details: Mapping[str, Any],
    prev_hash: str,
) -> str:
    """SHA-256 of an entry's canonical form (sorted keys, UTC microseconds) and its predecessor."""
    body = orjson.dumps(
        {
            "seq": seq,
            "at": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "action": action,
            "subject": subject,
            "reason": reason,
            "verified_by": verified_by,
            "details": details,
            "prev": prev_hash,
        },
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(body).hexdigest()


def append(
    conn: Connection,
    action: str,
    subject: str,
    reason: str,
    verified_by: str,
    details: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry in the caller's transaction (so it commits with the action it records)."""
    details = dict(details or {})
    conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": _LOCK})
    last = conn.execute(text("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")).first()
    seq, prev = (int(last[0]) + 1, str(last[1])) if last else (1, GENESIS)
    at = datetime.now(UTC)
    digest = entry_hash(seq, at, action, subject, reason, verified_by, details, prev)
    conn.execute(
        text(
            "INSERT INTO audit_log (seq, at, action, subject, reason, verified_by, details, "
            "prev_hash, hash) VALUES (:seq, :at, :action, :subject, :reason, :verified, "
            "CAST(:details AS jsonb), :prev, :hash)"
        ),
        {
            "seq": seq,
            "at": at,
            "action": action,
            "subject": subject,
            "reason": reason,
            "verified": verified_by,
            "details": orjson.dumps(details).decode(),
            "prev": prev,
            "hash": digest,
        },
    )
    return AuditEntry(seq, at, action, subject, reason, verified_by, details, prev, digest)


def entries(engine: Engine, batch: int = 5000) -> Iterator[AuditEntry]:
    """Every entry in order, read in batches (the log grows without bound)."""
    after = 0
    while True:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT seq, at, action, subject, reason, verified_by, details, prev_hash, "
                    "hash FROM audit_log WHERE seq > :after ORDER BY seq LIMIT :n"
                ),
                {"after": after, "n": batch},
            ).all()
        if not rows:
            return
        for r in rows:
            details = r.details if isinstance(r.details, dict) else orjson.loads(r.details)
            yield AuditEntry(
                int(r.seq),
                r.at,
                r.action,
                r.subject,
                r.reason,
                r.verified_by,
                details,
                r.prev_hash,
                r.hash,
            )
        after = int(rows[-1].seq)


def verify_chain(engine: Engine) -> tuple[int, BrokenLink | None]:
    """Check the chain end to end: ``(entries checked, first broken link or None)``."""
    expected_prev = GENESIS
    checked = 0
    for entry in entries(engine):
        checked += 1
        if entry.seq != checked:
            return checked, BrokenLink(entry.seq, f"expected entry {checked}: entries are missing")
        if entry.prev_hash != expected_prev:
            return checked, BrokenLink(entry.seq, "its link to the entry before does not match")
        recomputed = entry_hash(
            entry.seq,
            entry.at,
            entry.action,
            entry.subject,
            entry.reason,
            entry.verified_by,
            entry.details,
            entry.prev_hash,
        )
        if recomputed != entry.hash:
            return checked, BrokenLink(entry.seq, "its content was changed after it was written")
        expected_prev = entry.hash
    return checked, None
