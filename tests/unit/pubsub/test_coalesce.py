"""Group commit: concurrent submits share flushes, and each caller gets its own outcome."""

from __future__ import annotations

import threading
import time

import pytest

from shared.errors import ServiceUnavailable
from shared.pubsub._coalesce import GroupCommit


class SlowSink:
    """A flush that takes ``delay`` seconds and records what each call carried."""

    def __init__(self, delay: float = 0.05, fail: BaseException | None = None) -> None:
        self.delay = delay
        self.fail = fail
        self.calls: list[list[int]] = []
        self.budgets: list[float] = []
        self.lock = threading.Lock()

    def __call__(self, items: list[int], budget: float) -> None:
        with self.lock:
            self.calls.append(list(items))
            self.budgets.append(budget)
        time.sleep(self.delay)
        if self.fail is not None:
            raise self.fail


def run_concurrently(group: GroupCommit[int], batches: list[list[int]], budget: float = 5.0):
    errors: dict[int, BaseException] = {}
    start = threading.Barrier(len(batches))

    def submit(index: int) -> None:
        start.wait()
        try:
            group.submit(batches[index], budget)
        except BaseException as exc:  # recorded for the assertions
            errors[index] = exc

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(len(batches))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return errors


def test_a_lone_submit_is_flushed_at_once() -> None:
    sink = SlowSink(delay=0)
    group: GroupCommit[int] = GroupCommit(sink, "test")
    started = time.monotonic()
    group.submit([1, 2], 5.0)
    assert time.monotonic() - started < 0.5
    assert sink.calls == [[1, 2]]
    assert (group.flushes, group.submits) == (1, 1)


def test_concurrent_submits_share_flushes_and_every_item_is_flushed_once() -> None:
    sink = SlowSink(delay=0.05)
    group: GroupCommit[int] = GroupCommit(sink, "test")
    batches = [[i * 10, i * 10 + 1] for i in range(12)]
    assert run_concurrently(group, batches) == {}
    flushed = sorted(item for call in sink.calls for item in call)
    assert flushed == sorted(item for batch in batches for item in batch)
    assert len(sink.calls) < len(batches)  # callers that queued behind a flush shared the next
    assert group.submits == len(batches)
    for call in sink.calls:  # a caller's items stay together and in order
        for batch in batches:
            if batch[0] in call:
                assert call[call.index(batch[0]) + 1] == batch[1]


def test_groups_stay_within_max_items() -> None:
    sink = SlowSink(delay=0.05)
    group: GroupCommit[int] = GroupCommit(sink, "test", max_items=3)
    assert run_concurrently(group, [[i, i] for i in range(8)]) == {}
    assert all(len(call) <= 3 for call in sink.calls)
    assert sum(len(call) for call in sink.calls) == 16


def test_a_failed_flush_fails_every_caller_of_its_group_and_the_next_group_runs() -> None:
    error = ServiceUnavailable("Pub/Sub refused the batch", service="pubsub")
    sink = SlowSink(delay=0.05, fail=error)
    group: GroupCommit[int] = GroupCommit(sink, "test")
    errors = run_concurrently(group, [[i] for i in range(6)])
    assert len(errors) == 6 and all(e is error for e in errors.values())
    sink.fail = None
    group.submit([99], 5.0)  # the group is not stuck after failures
    assert sink.calls[-1] == [99]


def test_a_caller_whose_budget_runs_out_gets_service_unavailable() -> None:
    release = threading.Event()

    def stuck(items: list[int], budget: float) -> None:
        release.wait(5)

    group: GroupCommit[int] = GroupCommit(stuck, "Pub/Sub")
    leader = threading.Thread(target=group.submit, args=([1], 10.0))
    leader.start()
    time.sleep(0.05)  # the leader is inside its flush; this caller queues behind it
    with pytest.raises(ServiceUnavailable, match="did not confirm the batch within 0.1 s"):
        group.submit([2], 0.1)
    release.set()
    leader.join(5)
    group.submit([3], 5.0)  # the caller that gave up left the queue; the group still works


def test_a_promoted_leader_gets_the_budget_of_its_most_patient_member() -> None:
    sink = SlowSink(delay=0.1)
    group: GroupCommit[int] = GroupCommit(sink, "test")
    first = threading.Thread(target=group.submit, args=([1], 5.0))
    first.start()
    time.sleep(0.03)
    patient = threading.Thread(target=group.submit, args=([2], 5.0))
    patient.start()
    first.join(5)
    patient.join(5)
    assert sink.calls == [[1], [2]]
    assert sink.budgets[1] > 4.0


def test_valueerror_when_a_waiter_times_out_inside_a_flush_under_way() -> None:
    """Found by the chaos run (ingest answered 500 while Pub/Sub restarted): a waiter whose
    budget ran out after a leader had taken it into a flush tried to leave the queue it was no
    longer in (``list.remove`` raised ValueError). It now waits for that flush's outcome."""
    sink = SlowSink(delay=0.3)
    group: GroupCommit[int] = GroupCommit(sink, "pubsub")
    outcomes: dict[str, BaseException | None] = {}

    def submit(name: str, items: list[int], budget: float) -> None:
        try:
            group.submit(items, budget)
            outcomes[name] = None
        except BaseException as exc:
            outcomes[name] = exc

    leader = threading.Thread(target=submit, args=("a", [1], 5.0))
    leader.start()
    time.sleep(0.1)  # a's flush is under way; b and c queue behind it
    waiters = [
        threading.Thread(target=submit, args=("b", [2], 5.0)),
        threading.Thread(target=submit, args=("c", [3], 0.35)),
    ]
    for thread in waiters:
        thread.start()
        time.sleep(0.01)
    for thread in [leader, *waiters]:
        thread.join(5)
    # b led the group [b, c]; c's budget ran out during that flush, which carried its item.
    assert sink.calls == [[1], [2, 3]]
    assert outcomes == {"a": None, "b": None, "c": None}
