"""The order-independent digest of a set of event ids, computed alike in PostgreSQL and DuckDB.

Each id contributes the first 60 bits of the MD5 of its text; the digest is their sum, kept as
an exact decimal (PostgreSQL ``numeric``, DuckDB ``HUGEINT``), written as text. A sum does not
depend on row order and adds up across files, so a day's digest is the sum of its files'.
It finds a lost, duplicated or swapped row; it is not a defence against a forger.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from shared.storage.warm.columns import ID_COLUMNS
from shared.storage.warm.export import sql_string


def hot_digest_sql(table: str, where: str, group_by: str | None = None) -> str:
    """PostgreSQL: ``(rows, digest)`` of the rows of ``table`` matching ``where``; with
    ``group_by``, ``(key, rows, digest)`` per value of that expression, in its order."""
    column = ID_COLUMNS[table]
    digest = f"coalesce(sum(('x' || left(md5({column}::text), 15))::bit(60)::bigint), 0)::text"
    if group_by is None:
        return f"SELECT count(*), {digest} FROM {table} WHERE {where}"  # noqa: S608
    return (
        f"SELECT {group_by}, count(*), {digest} FROM {table} WHERE {where} "  # noqa: S608
        "GROUP BY 1 ORDER BY 1"
    )


def file_digest(
    con: Any, table: str, paths: Sequence[Path | str], where: str = "true"
) -> tuple[int, str]:
    """DuckDB: ``(rows, digest)`` of the rows of Parquet files of ``table`` matching ``where``."""
    files = "[" + ", ".join(sql_string(str(p)) for p in paths) + "]"
    column = ID_COLUMNS[table]
    rows, digest = con.execute(
        f"SELECT count(*), coalesce(sum(('0x' || left(md5({column}), 15))::UBIGINT), 0)::VARCHAR "  # noqa: S608
        f"FROM read_parquet({files}, union_by_name = true) WHERE {where}"
    ).fetchone()
    return int(rows), str(digest)


def footer_rows(con: Any, path: Path | str) -> int:
    """DuckDB: the row count a Parquet file's footer declares."""
    literal = sql_string(str(path))
    (rows,) = con.execute(
        f"SELECT coalesce(sum(num_rows), 0) FROM parquet_file_metadata({literal})"  # noqa: S608
    ).fetchone()
    return int(rows)


def add_digests(digests: Iterable[str]) -> str:
    """The digest of the union of disjoint sets, from theirs."""
    return str(sum(int(d) for d in digests))


def subtract_digest(whole: str, part: str) -> str:
    """The digest of a set with a subset (whose digest is ``part``) taken out."""
    return str(int(whole) - int(part))
