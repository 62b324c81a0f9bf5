"""The chaos run's ledger and checker: what counts as accepted, lost, doubled and explained."""

from __future__ import annotations

import gzip
import json
import threading
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from shared.pubsub.dlq_hold import HeldMessage
from shared.pubsub.message import encode_message
from telemetry_cli.chaos.check import DeadLetters, _ranges, reconcile
from telemetry_cli.chaos.ledger import Ledger, LedgerEntry, LedgerProxy, events_of
from telemetry_cli.chaos.load import shift

ID = "00000000-0000-4000-8000-{:012d}"


def event(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": ID.format(n),
        "name": "node.expand",
        "ts": "2026-11-28T10:00:00.000Z",
        "session_id": "s-1",
        **extra,
    }


def test_only_events_ingest_did_not_reject_are_recorded_each_once_in_client_order() -> None:
    ledger = Ledger()
    ledger.record([event(1), event(2), event(3)], {"accepted": 2, "rejected": [{"index": 1}]})
    ledger.record([event(3), event(4)], {"accepted": 2, "rejected": []})  # a client retry
    entries = {e.event_id: e for e in ledger.snapshot()}
    assert sorted(entries) == [ID.format(1), ID.format(3), ID.format(4)]
    assert [entries[ID.format(n)].seq for n in (1, 3, 4)] == [1, 2, 3]
    assert ledger.resent == 1
    assert ledger.rejected == 1
    assert ledger.by_client() == {"s-1": 3}


def test_an_llm_call_is_checked_in_api_calls_log() -> None:
    ledger = Ledger()
    ledger.record([event(1, name="llm.call")], {"rejected": []})
    assert ledger.snapshot()[0].table == "api_calls_log"


def test_context_fields_apply_to_events_that_lack_them_and_gzip_is_read() -> None:
    body = json.dumps(
        {"context": {"session_id": "s-ctx", "user_id": "u-9"}, "events": [event(1), {"x": 1}]}
    ).encode()
    events = events_of(gzip.compress(body), "gzip")
    assert events[0]["session_id"] == "s-1"  # its own wins
    assert events[0]["user_id"] == "u-9"
    assert events_of(b"not json", None) == []
    assert events_of(b'{"events": 3}', None) == []


def entry(n: int, user: str | None = None, client: str = "c") -> LedgerEntry:
    return LedgerEntry(ID.format(n), client, n, "node.expand", "2026-11-28", user)


def test_reconcile_counts_lost_duplicates_dead_letters_and_the_erased_person() -> None:
    entries = [entry(1), entry(2), entry(3), entry(4), entry(5), entry(6, user="gone")]
    hot = Counter({ID.format(1): 1, ID.format(2): 2, ID.format(3): 1})
    warm = Counter({ID.format(1): 1, ID.format(2): 1, ID.format(3): 2})
    verdict = reconcile(entries, hot, warm, {ID.format(4)}, "gone")
    assert (verdict.accepted, verdict.stored, verdict.lost, verdict.duplicates) == (6, 3, 1, 1)
    assert (verdict.dead_lettered, verdict.warm, verdict.warm_duplicates) == (1, 3, 1)
    assert (verdict.erased_events, verdict.erased_found) == (1, 0)
    assert verdict.gaps == ["client c: seq 5 missing"]
    assert not verdict.clean
    assert verdict.line() == (
        "chaos: 6 accepted, 3 stored, 1 lost, 1 duplicates, 1 dead-lettered, warm 3 of 3"
    )


def test_a_clean_run_and_an_erased_event_found_again() -> None:
    entries = [entry(1), entry(2, user="gone")]
    clean = reconcile(
        entries, Counter({ID.format(1): 1}), Counter({ID.format(1): 1}), set(), "gone"
    )
    assert clean.clean
    found = reconcile(
        entries,
        Counter({ID.format(1): 1, ID.format(2): 1}),
        Counter({ID.format(1): 1}),
        set(),
        "gone",
    )
    assert found.erased_found == 1 and not found.clean


def test_ranges_of_missing_sequence_numbers() -> None:
    assert _ranges([1, 2, 3, 7, 9, 10]) == "1-3,7,9-10"


def test_dead_letters_are_explained_by_poison_or_accepted_events() -> None:
    import msgspec

    accepted = ID.format(1)
    held = DeadLetters()
    message = encode_message([msgspec.Raw(json.dumps({"event_id": accepted}).encode())], ["bad"])
    held.add(
        [
            HeldMessage("1", {"reason": "message body is not JSON", "chaos_poison": "0"}, b"x"),
            HeldMessage("2", {"reason": "events[0]: bad"}, message),
            HeldMessage("3", {}, b"x"),
            HeldMessage("4", {"reason": "events[0]: bad"}, b"not a body"),
        ]
    )
    held.add(
        [
            HeldMessage(
                "5",
                {
                    "reason": "message body is not JSON",
                    "chaos_poison": "0",
                    "original_message_id": "1",
                },
                b"x",
            )
        ]
    )
    events, reasons, unexplained = held.explain(set(), {accepted})
    assert events == {accepted}
    assert reasons["message body is not JSON"] == 1  # message 5 is a copy of message 1's
    assert held.originals() == 4
    assert [u.split(":")[0] for u in unexplained] == ["3", "4"]


def test_shift_moves_event_times() -> None:
    from datetime import timedelta

    events = [event(1)]
    shift(events, -timedelta(hours=48))
    assert events[0]["ts"] == "2026-11-26T10:00:00.000Z"


class _Ingest(BaseHTTPRequestHandler):
    """Answers like ingest: 202 with the second event rejected."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        body = json.dumps({"accepted": 1, "rejected": [{"index": 1}]}).encode()
        self.send_response(202)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def post(url: str, body: bytes) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(url, data=body, headers={"Origin": "http://o"})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, dict(answer.headers)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers)


def test_the_proxy_records_202_answers_and_holds_the_door() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ingest)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    ledger = Ledger()
    proxy = LedgerProxy(f"http://127.0.0.1:{server.server_address[1]}", ledger).start()
    try:
        body = json.dumps({"events": [event(1), event(2)]}).encode()
        assert post(f"{proxy.url}/v1/events", body)[0] == 202
        assert [e.event_id for e in ledger.snapshot()] == [ID.format(1)]
        with proxy.held():
            status, headers = post(f"{proxy.url}/v1/events", body)
        assert status == 503 and headers["Retry-After"] == "1"
        assert headers["Access-Control-Allow-Origin"] == "http://o"
        assert ledger.statuses == Counter({202: 1, 503: 1})
    finally:
        proxy.stop()
        server.shutdown()


def test_2001_events_when_the_erased_person_came_after_the_load_was_taken() -> None:
    """Found by the short chaos run in CI (2,001 accepted of 2,000): the erased person's last
    session took what was left, or 1 event when nothing was; their events are now reserved
    from the plan up front."""
    from telemetry_cli.chaos.load import BeaconLoad, LoadCounts, LoadPlan

    plan = LoadPlan(events=100, seed=1, browser_share=0.0, backend_share=0.0)
    counts = LoadCounts()
    load = BeaconLoad(plan, "http://127.0.0.1:9/v1/events", counts, lambda: float("inf"))
    sent: list[dict[str, Any]] = []
    load._send = sent.extend  # type: ignore[method-assign]
    load.run_thread(0)  # every beacon event taken first
    load.run_erased_person()
    assert counts.made == len(sent) == 100
    assert sum(e.get("user_id") == plan.erased_user for e in sent) == counts.erased_person == 60
