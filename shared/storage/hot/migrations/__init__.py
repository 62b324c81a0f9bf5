"""Alembic migrations of the hot tier (run with ``telemetry migrate``)."""
