"""What ingest's OTLP routes made of each instrumentation's exports: the counts behind
``telemetry otlp report``.

Per instrumentation scope (name and version), ingest counts the spans it received, the calls it
made of them, the spans that were not GenAI or not a model call, the spans it refused (by the
field that refused them), the span attributes it dropped (by name, never value), the span
events it never read, the calls whose tokens broke the ledger, and the log records it refused.
Each summary interval the counts become ``pipeline.otlp`` events (``pipeline_events.py``), one
per (scope, version, measure, item), stored like any event.

Names are bounded: a number inside an attribute name (``gen_ai.prompt.3.content``) becomes
``N``, names are cut at 128 characters, and an interval keeps at most ``max_rows`` distinct
rows (the rest are added to an ``(other)`` item of their measure).
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Mapping
from typing import Literal, get_args

Measure = Literal[
    "spans",
    "calls",
    "not_genai",
    "not_model_call",
    "refused",
    "dropped_attribute",
    "span_events",
    "token_anomaly",
    "log_records",
]
MEASURES: tuple[str, ...] = get_args(Measure)
#: One count: (scope, scope version, measure, item).
Row = tuple[str, str, str, str]
OTHER = "(other)"
_NUMBERED = re.compile(r"(?<=\.)\d+(?=\.|$)|\[\d+\]")


def attribute_name(key: str) -> str:
    """An attribute name as the report counts it (numbered parts made ``N``, at most 128)."""
    return _NUMBERED.sub("N", key)[:128]


class OtlpTally:
    """An instance's counts since the last :meth:`take`; thread-safe, at most ``max_rows``."""

    def __init__(self, max_rows: int = 2000) -> None:
        self.max_rows = max_rows
        self._lock = threading.Lock()
        self._rows: Counter[Row] = Counter()

    def add(self, rows: Mapping[Row, int]) -> None:
        """Add one request's counts (names cut to what a ``pipeline.otlp`` event holds)."""
        with self._lock:
            for (scope, version, measure, item), count in rows.items():
                kept = (scope[:256], version[:64], measure, item[:128])
                if kept not in self._rows and len(self._rows) >= self.max_rows:
                    kept = (kept[0], kept[1], measure, OTHER)
                self._rows[kept] += count

    def take(self) -> dict[Row, int]:
        """The counts so far, and start again."""
        with self._lock:
            rows, self._rows = self._rows, Counter()
        return dict(rows)
