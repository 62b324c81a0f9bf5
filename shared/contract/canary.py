"""Canary traffic: events a deployment receives from ``telemetry canary``, not from people.

They are ordinary events in every tier, told apart by their ``app_version`` (the beacon
context's field, stored on every row of both event tables). Product metrics leave them out
(``shared/metrics/sql.py``); the canary compares them with the events it replayed.
"""

from __future__ import annotations

#: The ``app_version`` of every canary event.
CANARY_APP_VERSION = "canary"


def not_canary_sql() -> str:
    """SQL (PostgreSQL and DuckDB): the rows that are not canary traffic."""
    return f"app_version IS DISTINCT FROM '{CANARY_APP_VERSION}'"
