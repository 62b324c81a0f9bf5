"""How long each tier keeps data, and how far an event's time may be from now: the one place
every tier, the contract and the tests read.

Terraform's bucket lifecycle rules are checked against these numbers by the test suite, so a
change here that is not mirrored in ``terraform/`` fails ``make test``. The contract refuses an
event older than the hot tier keeps (it would be dropped at once) or further in the future than
the accepted clock skew.
"""

from __future__ import annotations

#: Days an event stays in the hot tier (PostgreSQL), counted from its event day.
HOT_RETENTION_DAYS = 30
#: Days a warm-tier Parquet partition is kept.
WARM_RETENTION_DAYS = 180
#: Days after which cold archives move to the ARCHIVE storage class.
COLD_ARCHIVE_AFTER_DAYS = 365
#: Days a cold archive object is kept in all.
COLD_RETENTION_DAYS = 730
#: Largest clock skew accepted for an event time in the future.
MAX_FUTURE_SKEW_HOURS = 24
