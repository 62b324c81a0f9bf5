"""The warm tier's erasure index: per file, a Bloom filter of the pseudonyms it holds.

Erasure (the lifecycle function) must rewrite only the files that hold a person. Parquet's own
Bloom filters do not help here: DuckDB writes one only for a dictionary-encoded column, and a
file holds too many distinct ``user_key`` values for that. So each file gets a filter of its
own, kept beside it in the file's catalog record (``catalog.py``): erasure asks PostgreSQL
which files may hold the person's pseudonyms (one under every key ever active) without opening
any file.

A filter never misses a pseudonym a file holds; it wrongly names a file that does not hold it
with probability :data:`FALSE_POSITIVE_RATE` (sized for each file's distinct pseudonyms; the
rate measured by ``benchmarks/snapshot.py`` is in the README). A wrongly named file is opened
and found clean: it costs a read, never a wrong answer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rbloom import Bloom

from shared.storage.warm.export import sql_string

#: The designed false-positive rate of each file's filter. At 0.1 % an erasure over 360 files
#: (180 days, two tables) opens about 0.4 files it need not; at 1 % it opened 3 to 4, over the
#: issue's bound of 1.1x the files that hold the person. A filter costs 1.8 bytes per pseudonym.
FALSE_POSITIVE_RATE = 0.001


def _stable_hash(key: str) -> int:
    """A 128-bit hash that is the same in every process (Python's own ``hash`` is salted)."""
    return int.from_bytes(
        hashlib.blake2b(key.encode("utf-8"), digest_size=16).digest(), "big", signed=True
    )


def build_index(user_keys: Iterable[str]) -> bytes:
    """The serialized filter of a file's distinct pseudonyms."""
    keys = list(user_keys)
    bloom = Bloom(max(len(keys), 1), FALSE_POSITIVE_RATE, _stable_hash)
    bloom.update(keys)
    return bytes(bloom.save_bytes())


def may_hold(index: bytes, user_key: str) -> bool:
    """False when the file certainly does not hold ``user_key``; True when it may."""
    return user_key in Bloom.load_bytes(index, _stable_hash)


def distinct_user_keys(con: Any, path: Path | str) -> list[str]:
    """DuckDB: the distinct pseudonyms of a Parquet file."""
    literal = sql_string(str(path))
    rows = con.execute(
        f"SELECT DISTINCT user_key FROM read_parquet({literal}) WHERE user_key IS NOT NULL"  # noqa: S608
    ).fetchall()
    return [str(r[0]) for r in rows]


def files_that_may_hold(
    indexes: Iterable[tuple[str, bytes]], user_keys: Iterable[str]
) -> list[str]:
    """The names, among ``(object_name, index)`` pairs, of files that may hold any key."""
    keys = list(user_keys)
    named = []
    for name, index in indexes:
        bloom = Bloom.load_bytes(index, _stable_hash)
        if any(key in bloom for key in keys):
            named.append(name)
    return named
