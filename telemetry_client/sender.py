"""A bounded in-process queue drained by a background sender, in batches.

Modelled on OpenTelemetry's ``BatchSpanProcessor``: recording never blocks the caller (a full
queue drops the event and counts it, with one warning); a worker thread sends by size or delay;
:meth:`BackgroundSender.flush` and process exit drain it within a timeout; after ``fork`` the
child starts with an empty queue and its own worker. Sending goes through a transport: straight
to Pub/Sub through the same intake (validation, sampling, pseudonymisation) as ingest, or to
the ingest URL over HTTP.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import json
import logging
import os
import random
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from shared.errors import TransientError, retry_after_seconds

logger = logging.getLogger("telemetry_client")

EventFactory = Callable[[], dict[str, Any]]


#: The longest wait between two tries of a batch.
MAX_BACKOFF_S = 10.0


def retry_wait_s(error: BaseException, attempt: int) -> float:
    """How long to wait before try ``attempt + 1``: the server's ``Retry-After`` when it gave
    one, else exponential backoff with full jitter (0.2 s, 0.4 s, … up to 10 s)."""
    if isinstance(error, TransientError):
        retry_after = error.context.get("retry_after_s")
        if isinstance(retry_after, int | float) and retry_after > 0:
            return float(min(retry_after, 60.0))
    ceiling = min(MAX_BACKOFF_S, 0.1 * 2**attempt)
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not security


class Transport(Protocol):
    """Delivers a batch of wire-format events; raises when it could not."""

    def send(self, events: list[dict[str, Any]]) -> None: ...


@dataclass
class SenderStats:
    """Counts of what happened to recorded events."""

    queued: int = 0
    sent: int = 0
    rejected: int = 0
    dropped_queue_full: int = 0
    dropped_send_failed: int = 0
    telemetry_errors: int = 0


class HttpTransport:
    """POSTs batches to an ingest URL (``TELEMETRY_INGEST_URL``)."""

    def __init__(self, url: str, stats: SenderStats, timeout: float = 10.0) -> None:
        self.url = url
        self.stats = stats
        self.timeout = timeout

    def send(self, events: list[dict[str, Any]]) -> None:
        """POST one beacon; a 5xx or network failure raises so the batch is retried."""
        body = json.dumps({"events": events}).encode()
        request = urllib.request.Request(  # noqa: S310 - the operator's configured ingest URL
            self.url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                answer = json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            if error.code >= 500 or error.code == 429:
                raise TransientError(
                    f"ingest answered {error.code}",
                    retry_after_s=retry_after_seconds(error.headers.get("Retry-After")),
                ) from None
            self.stats.rejected += len(events)
            logger.warning("ingest refused a telemetry batch", extra={"status": error.code})
            return
        except (OSError, ValueError) as exc:
            raise TransientError(f"ingest unreachable ({type(exc).__name__})") from None
        if answer.get("rejected"):
            self.stats.rejected += len(answer["rejected"])
            logger.warning(
                "telemetry events rejected by ingest", extra={"rejected": len(answer["rejected"])}
            )


_senders: weakref.WeakSet[BackgroundSender] = weakref.WeakSet()


def _reinit_after_fork() -> None:
    for sender in list(_senders):
        sender._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_after_fork)


class BackgroundSender:
    """The bounded queue and its worker."""

    def __init__(
        self,
        transport_factory: Callable[[SenderStats], Transport],
        max_queue: int = 10_000,
        batch_size: int = 200,
        delay: float = 1.0,
        retry_s: float = 60.0,
        exit_flush_timeout: float = 5.0,
    ) -> None:
        self.stats = SenderStats()
        self.exit_flush_timeout = exit_flush_timeout
        self._transport_factory = transport_factory
        self._transport: Transport | None = None
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.delay = delay
        #: How long a batch is retried before it is dropped and counted.
        self.retry_s = retry_s
        #: Waits between retries (a test replaces it to see them); ends early on shutdown.
        self._pause: Callable[[float], object] = self._retry_wait
        self._init_state()
        _senders.add(self)
        atexit.register(self._at_exit)

    def _init_state(self) -> None:
        self._queue: collections.deque[EventFactory] = collections.deque()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._idle = threading.Condition(self._lock)
        #: Wakes a retry wait on shutdown only (new events must not hurry a retry).
        self._retry_cond = threading.Condition(self._lock)
        self._flush_requested = 0
        self._in_flight = 0
        self._worker: threading.Thread | None = None
        self._stopped = False
        self._warned_full = False

    def _after_fork(self) -> None:
        # The parent still owns (and will send) what was queued before the fork.
        self._init_state()

    # -- recording -------------------------------------------------------------------------
    def enqueue(self, make_event: EventFactory) -> bool:
        """Queue an event (built later, on the worker); False when the queue is full."""
        with self._lock:
            if self._stopped:
                return False
            if len(self._queue) >= self.max_queue:
                self.stats.dropped_queue_full += 1
                if not self._warned_full:
                    self._warned_full = True
                    logger.warning(
                        "telemetry queue full; dropping events", extra={"max_queue": self.max_queue}
                    )
                return False
            self._queue.append(make_event)
            self.stats.queued += 1
            if self._worker is None:
                self._start_worker()
            if len(self._queue) >= self.batch_size:
                self._wake.notify()
            return True

    def start(self) -> None:
        """Start the worker now (it builds the transport at once, before any event waits)."""
        with self._lock:
            if self._worker is None and not self._stopped:
                self._start_worker()

    def _start_worker(self) -> None:
        self._worker = threading.Thread(target=self._run, name="telemetry-sender", daemon=True)
        self._worker.start()

    def _ensure_transport(self) -> Transport:
        if self._transport is None:
            self._transport = self._transport_factory(self.stats)
        return self._transport

    # -- worker ----------------------------------------------------------------------------
    def _take_batch(self) -> list[EventFactory] | None:
        with self._lock:
            deadline = time.monotonic() + self.delay
            while (
                not self._stopped
                and not self._flush_requested
                and len(self._queue) < self.batch_size
            ):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._wake.wait(remaining)
            if not self._queue:
                self._flush_requested = 0
                self._idle.notify_all()
                return None if self._stopped else []
            batch = [self._queue.popleft() for _ in range(min(self.batch_size, len(self._queue)))]
            self._in_flight = len(batch)
            return batch

    def _run(self) -> None:
        # Build the transport (imports, clients) right away: at interpreter exit new imports of
        # thread pools fail, so it must exist before the last flush.
        try:
            self._ensure_transport()
        except Exception:
            self.stats.telemetry_errors += 1
            logger.warning("telemetry transport could not be built", exc_info=True)
        while True:
            batch = self._take_batch()
            if batch is None:
                return
            if batch:
                self._send(batch)
            with self._lock:
                self._in_flight = 0
                if not self._queue:
                    self._flush_requested = 0
                    self._idle.notify_all()

    def _send(self, batch: list[EventFactory]) -> None:
        events = []
        for make_event in batch:
            try:
                events.append(make_event())
            except Exception:
                self.stats.telemetry_errors += 1
                logger.warning("could not build a telemetry event", exc_info=True)
        if not events:
            return
        started = time.monotonic()
        attempt = 0
        while True:
            try:
                self._ensure_transport().send(events)
                self.stats.sent += len(events)
                return
            except Exception as exc:
                attempt += 1
                wait = retry_wait_s(exc, attempt)
                if time.monotonic() - started + wait > self.retry_s or self._stopped:
                    self.stats.dropped_send_failed += len(events)
                    logger.warning(
                        "telemetry batch dropped after retries",
                        extra={
                            "events": len(events),
                            "attempts": attempt,
                            "error_type": type(exc).__name__,
                        },
                    )
                    return
                self._pause(wait)

    def _retry_wait(self, seconds: float) -> None:
        with self._lock:
            if not self._stopped:
                self._retry_cond.wait(seconds)

    # -- draining --------------------------------------------------------------------------
    def flush(self, timeout: float = 5.0) -> bool:
        """Send everything queued now; True when it was all handed over within ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._lock:
            if self._worker is None or (not self._queue and not self._in_flight):
                return True
            self._flush_requested += 1
            self._wake.notify()
            while self._queue or self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def shutdown(self, timeout: float = 5.0) -> bool:
        """Flush, then stop the worker; later events are refused."""
        done = self.flush(timeout)
        with self._lock:
            self._stopped = True
            self._wake.notify()
            self._retry_cond.notify_all()
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout)
        return done

    def _at_exit(self) -> None:
        with contextlib.suppress(Exception):  # never fail interpreter exit
            self.shutdown(timeout=self.exit_flush_timeout)
