"""The chaos run's checker: the ledger reconciled against the hot tier, the warm tier and the DLQ.

* **Hot**: how many rows each accepted event id has in its table (``event_id`` or ``call_id``).
* **Warm**: the same over the recorded Parquet files of the warm tier (DuckDB, ``tier="warm"``).
* **Per day**: hot and warm counts and id digests per table and day (``snapshot verify``).
* **Dead letters**: every held message has a reason and is either an injected poison message or
  holds accepted events (which then count as dead-lettered, not lost).
* **Erasure**: none of the erased person's events is in either tier.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, text

from shared.pubsub import dead_letter
from shared.pubsub.dlq_hold import HeldMessage
from shared.storage.hot.tables import table_for_event
from telemetry_cli.chaos.ledger import LedgerEntry

#: Each table's id column.
ID_COLUMN = {"telemetry_events": "event_id", "api_calls_log": "call_id"}
_CHUNK = 5_000


def id_column(name: str) -> tuple[str, str]:
    """(table, id column) that stores events of this name."""
    table = str(table_for_event(name).name)
    return table, ID_COLUMN[table]


def hot_counts(engine: Engine, entries: Iterable[LedgerEntry]) -> Counter[str]:
    """Rows per event id in the hot tier (ids with no row are absent)."""
    by_table: dict[str, list[str]] = {}
    for entry in entries:
        by_table.setdefault(entry.table, []).append(entry.event_id)
    counts: Counter[str] = Counter()
    with engine.connect() as conn:
        for table, ids in by_table.items():
            column = ID_COLUMN[table]
            for start in range(0, len(ids), _CHUNK):
                rows = conn.execute(
                    text(
                        f"SELECT {column}::text, count(*) FROM {table} "  # noqa: S608 - constants
                        f"WHERE {column} = ANY(CAST(:ids AS uuid[])) GROUP BY 1"
                    ),
                    {"ids": ids[start : start + _CHUNK]},
                )
                counts.update({str(r[0]): int(r[1]) for r in rows})
    return counts


def warm_counts(views: Any, entries: Iterable[LedgerEntry]) -> Counter[str]:
    """Rows per event id in the warm tier's files (``views``: DuckDB with the warm views)."""
    import pyarrow as pa

    by_table: dict[str, list[str]] = {}
    for entry in entries:
        by_table.setdefault(entry.table, []).append(entry.event_id)
    counts: Counter[str] = Counter()
    for table, ids in by_table.items():
        column = ID_COLUMN[table]
        views.register("chaos_wanted", pa.table({"id": pa.array(ids, pa.string())}))
        try:
            rows = views.execute(
                f"SELECT lower(CAST(t.{column} AS VARCHAR)) AS id, count(*) "  # noqa: S608
                f"FROM {table} t JOIN chaos_wanted w "
                f"ON lower(CAST(t.{column} AS VARCHAR)) = w.id GROUP BY 1"
            ).fetchall()
        finally:
            views.unregister("chaos_wanted")
        counts.update({str(r[0]): int(r[1]) for r in rows})
    return counts


@dataclass
class DeadLetters:
    """What the hold subscription held, seen at each look (the emulator forgets on restart)."""

    messages: dict[str, HeldMessage] = field(default_factory=dict)

    def add(self, held: Iterable[HeldMessage]) -> None:
        for message in held:
            self.messages[message.message_id] = message

    def originals(self) -> int:
        """How many messages were dead-lettered: a message delivered again is dead-lettered
        again by the sink (at least once), and its copies share ``original_message_id``."""
        return len(
            {
                m.attributes.get(dead_letter.ORIGINAL_MESSAGE_ID) or m.message_id
                for m in self.messages.values()
            }
        )

    def explain(
        self, poison: set[str], ledger_ids: set[str]
    ) -> tuple[set[str], Counter[str], list[str]]:
        """(accepted event ids dead-lettered, original messages by reason, unexplained ones)."""
        from shared.pubsub.message import event_dicts

        events: set[str] = set()
        reasons: Counter[str] = Counter()
        unexplained: list[str] = []
        counted: set[str] = set()
        for message in self.messages.values():
            reason = dead_letter.reason_of(message.attributes)
            original = message.attributes.get(dead_letter.ORIGINAL_MESSAGE_ID, "")
            if (original or message.message_id) not in counted:
                counted.add(original or message.message_id)
                reasons[reason] += 1
            if reason == "unknown":
                unexplained.append(f"{message.message_id}: no reason")
                continue
            if original in poison or "chaos_poison" in message.attributes:
                continue
            try:
                ids = {str(e.get("event_id", "")).lower() for e in event_dicts(message.data)}
            except Exception:  # a body that is not a message: only poison may be that
                unexplained.append(f"{message.message_id}: {reason} (not injected poison)")
                continue
            known = ids & ledger_ids
            if not known:
                unexplained.append(f"{message.message_id}: {reason} (no accepted event)")
            events |= known
        return events, reasons, unexplained


@dataclass
class Verdict:
    """The reconciliation's numbers and findings."""

    accepted: int = 0
    stored: int = 0
    lost: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    dead_letter_messages: int = 0
    dead_letter_copies: int = 0
    warm: int = 0
    warm_duplicates: int = 0
    erased_events: int = 0
    erased_found: int = 0
    days_compared: int = 0
    day_mismatches: list[str] = field(default_factory=list)
    unexplained: list[str] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)
    gaps: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """The goal: nothing lost or doubled, warm = stored, every dead letter explained."""
        return (
            self.lost == 0
            and self.duplicates == 0
            and self.warm_duplicates == 0
            and self.warm == self.stored
            and self.erased_found == 0
            and not self.day_mismatches
            and not self.unexplained
        )

    def line(self) -> str:
        """The run's last line."""
        return (
            f"chaos: {self.accepted} accepted, {self.stored} stored, {self.lost} lost, "
            f"{self.duplicates} duplicates, {self.dead_lettered} dead-lettered, "
            f"warm {self.warm} of {self.stored}"
        )


def reconcile(
    entries: list[LedgerEntry],
    hot: Counter[str],
    warm: Counter[str],
    dead_lettered: set[str],
    erased_user: str,
) -> Verdict:
    """Compare the ledger with what each tier holds."""
    verdict = Verdict(accepted=len(entries))
    missing_by_client: dict[str, list[int]] = {}
    for entry in entries:
        rows, files = hot.get(entry.event_id, 0), warm.get(entry.event_id, 0)
        if entry.user_id == erased_user:
            verdict.erased_events += 1
            verdict.erased_found += int(rows > 0 or files > 0)
            continue
        if rows:
            verdict.stored += 1
            verdict.duplicates += rows - 1
        elif entry.event_id in dead_lettered:
            verdict.dead_lettered += 1
        else:
            verdict.lost += 1
            missing_by_client.setdefault(entry.client, []).append(entry.seq)
        if files:
            verdict.warm += 1
            verdict.warm_duplicates += files - 1
    for client, seqs in sorted(missing_by_client.items())[:10]:
        verdict.gaps.append(f"client {client}: seq {_ranges(sorted(seqs))} missing")
    return verdict


def _ranges(numbers: list[int]) -> str:
    """``1-3,7`` for [1, 2, 3, 7]."""
    spans: list[list[int]] = []
    for n in numbers:
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ",".join(f"{a}-{b}" if a != b else str(a) for a, b in spans)
