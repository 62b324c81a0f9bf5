"""Periodic count summaries: a hot path logs totals every few seconds, not a line per call.

At hundreds of beacons per second a JSON log line per request costs as much CPU as
validating the beacon, and Cloud Run's request log already records every request with its
status and latency. So ingest logs a line per request only when there is something to say (a
rejection, an error) and adds every request to a :class:`PeriodicSummary`, which writes one
line with the totals (requests by status, events accepted, sampled out and rejected by field)
at most every ``interval_s`` seconds (and when :meth:`PeriodicSummary.flush` is called, as
ingest does at exit).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping


class PeriodicSummary:
    """Thread-safe counters, logged as one ``message`` line per interval and at exit."""

    def __init__(
        self,
        logger: logging.Logger,
        message: str,
        interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        on_flush: Callable[[Mapping[str, int], Mapping[str, Mapping[str, int]]], None]
        | None = None,
    ) -> None:
        self.logger = logger
        self.message = message
        self.interval_s = interval_s
        self.clock = clock
        #: Also handed each interval's totals (ingest stores them as ``pipeline.intake``).
        self.on_flush = on_flush
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._groups: dict[str, Counter[str]] = {}
        self._started = clock()

    def add(
        self, counts: Mapping[str, int], groups: Mapping[str, Mapping[str, int]] | None = None
    ) -> None:
        """Add ``counts`` (and per-key ``groups`` such as rejections by field); log if due."""
        with self._lock:
            self._counts.update(counts)
            for group, values in (groups or {}).items():
                if values:
                    self._groups.setdefault(group, Counter()).update(values)
            due = self.clock() - self._started >= self.interval_s
        if due:
            self.flush()

    def flush(self) -> None:
        """Log the totals since the last line (nothing when there were none) and start again."""
        with self._lock:
            now = self.clock()
            counts, groups, started = self._counts, self._groups, self._started
            self._counts, self._groups, self._started = Counter(), {}, now
        if not counts:
            return
        extra: dict[str, object] = dict(counts)
        extra.update({group: dict(values) for group, values in groups.items()})
        extra["interval_s"] = round(now - started, 1)
        self.logger.info(self.message, extra=extra)
        if self.on_flush is not None:
            try:
                self.on_flush(counts, groups)
            except Exception as exc:  # the line above keeps the counts; nothing else is lost
                self.logger.warning(
                    f"{self.message}: the totals could not be stored",
                    extra={"error_type": type(exc).__name__},
                )
