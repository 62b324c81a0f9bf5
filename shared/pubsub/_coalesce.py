"""Group commit: concurrent callers share one expensive flush instead of paying one each.

A ``Publish`` RPC costs about 0.25 ms of CPU whatever it carries, which is as much as
validating a whole 50-event beacon. When several requests of one instance publish at once,
:class:`GroupCommit` sends their messages together: the first caller becomes the leader and
flushes everything queued so far; callers arriving meanwhile queue up and wait; when a flush
ends the oldest waiter is promoted and flushes the next group. Nobody waits for a timer, so an
idle instance publishes each request at once, and a busy one makes fewer, fuller calls.

Every caller gets its own outcome: it returns once its items were flushed, or raises the
flush's error, or :class:`ServiceUnavailable` when its budget ran out first. Items of a caller
that gave up may still be flushed later; at-least-once delivery makes that harmless.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from shared.errors import ServiceUnavailable

T = TypeVar("T")


class _Ticket(Generic[T]):
    __slots__ = ("deadline", "done", "error", "items", "promoted", "wake")

    def __init__(self, items: Sequence[T], deadline: float) -> None:
        self.items = items
        self.deadline = deadline
        self.wake = threading.Event()
        self.done = False
        self.promoted = False
        self.error: BaseException | None = None


class GroupCommit(Generic[T]):
    """Coalesces concurrent ``submit`` calls into calls of ``flush(items, budget)``."""

    def __init__(
        self,
        flush: Callable[[list[T], float], object],
        service: str,
        max_items: int = 1000,
    ) -> None:
        self._flush = flush
        self._service = service
        self._max_items = max_items
        self._lock = threading.Lock()
        self._queue: list[_Ticket[T]] = []
        self._leading = False
        #: Flushes made and submits served (for logs and tests).
        self.flushes = 0
        self.submits = 0

    def submit(self, items: Sequence[T], budget: float) -> None:
        """Return once ``items`` were flushed; raise the flush's error or on timeout."""
        deadline = time.monotonic() + budget
        ticket = _Ticket(items, deadline)
        with self._lock:
            self._queue.append(ticket)
            if not self._leading:
                self._leading = ticket.promoted = True
        while not ticket.done:
            if ticket.promoted:
                self._lead()
                continue
            remaining = deadline - time.monotonic()
            woken = remaining > 0 and ticket.wake.wait(remaining)
            if not woken:
                if self._give_up(ticket):
                    raise ServiceUnavailable(
                        f"{self._service} did not confirm the batch within {budget:.1f} s",
                        service=self._service,
                    )
                # Taken into a flush under way (bounded by its own budget): its outcome is ours.
                ticket.wake.wait()
            ticket.wake.clear()
        if ticket.error is not None:
            raise ticket.error

    def _give_up(self, ticket: _Ticket[T]) -> bool:
        """Leave the queue after a timeout; False if the ticket was settled meanwhile, was
        promoted, or is in a flush under way (then the caller waits for that flush)."""
        with self._lock:
            if ticket.done:
                return False
            if ticket.promoted:  # promoted while timing out: lead anyway, the queue needs one
                ticket.wake.set()
                return False
            if ticket not in self._queue:  # a leader took it into the group it is flushing
                return False
            self._queue.remove(ticket)
            return True

    def _lead(self) -> None:
        with self._lock:
            group: list[_Ticket[T]] = []
            count = 0
            while self._queue and (
                not group or count + len(self._queue[0].items) <= self._max_items
            ):
                count += len(self._queue[0].items)
                group.append(self._queue.pop(0))
        items = [item for ticket in group for item in ticket.items]
        # The group's most patient member sets the budget: a leader promoted late in its own
        # budget still gives the others the time they were promised.
        budget = max(member.deadline for member in group) - time.monotonic()
        error: BaseException | None = None
        try:
            self._flush(items, max(budget, 0.001))
        except BaseException as exc:  # every waiter of the group gets the same outcome
            error = exc
        with self._lock:
            self.flushes += 1
            self.submits += len(group)
            for member in group:
                member.error = error
                member.done = True
                member.wake.set()
            if self._queue:
                successor = self._queue[0]
                successor.promoted = True
                successor.wake.set()
            else:
                self._leading = False
