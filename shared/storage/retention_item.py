"""What retention reports, one item per thing a tier removed, kept or created (or would, dry).

Each tier's expire operation (``hot/expire.py``, ``warm/expire.py``, ``cold/expire.py``) yields
these; retention (``retention.py``) collects them into its report, logs them and shows them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class RetentionItem:
    """One thing retention removed, kept, or created (or would, dry)."""

    tier: str
    subject: str
    action: str
    reason: str
    rows: int = 0
    bytes: int = 0
    verified_by: str = ""

    def to_json(self) -> dict[str, Any]:
        """The function's answer and the CLI's JSON."""
        return asdict(self)
