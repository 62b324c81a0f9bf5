"""Snapshot throughput and memory: hot rows into verified Parquet in the warm tier.

A fresh local stack (PostgreSQL, GCS emulator) is filled with ``--rows`` synthetic events over
10 days (1 M by default; ``--rows 10000000`` for the memory figure). The snapshot then runs as
operators run it, ``telemetry snapshot``, in its own process: export through DuckDB, checks
against PostgreSQL, create-only upload to the emulator, footer check, recording. Its peak RSS is
that process's own high-water mark (``VmHWM``, read by the process itself). In the same run the ceiling writes the same rows, as the same typed
columns sorted the same way with the same compression, to a local file, the faster of:
(a) ``COPY (SELECT …) TO STDOUT`` as CSV, ``pyarrow.csv``, then Parquet;
(b) DuckDB's postgres extension straight to Parquet.

A second figure: the p95 of a numeric prop over its typed column, and over the props kept as a
JSON string, on the same rows (DuckDB). Goal: typed at least 5x faster.
Last line: ``snapshot: <N> rows/s, ceiling <M> rows/s, ratio <r>, peak RSS <X> MB``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pyarrow.csv as pacsv  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from sqlalchemy import text  # noqa: E402

from shared.contract.registry import default_registry  # noqa: E402
from shared.settings import get_settings, reset_settings  # noqa: E402
from shared.storage.hot.engine import make_engine  # noqa: E402
from shared.storage.warm import export  # noqa: E402
from shared.storage.warm.columns import warm_columns  # noqa: E402
from shared.storage.warm.erasure_index import FALSE_POSITIVE_RATE  # noqa: E402
from telemetry_cli.stack.devstack import StackOptions, running_stack  # noqa: E402

FILL = """
INSERT INTO telemetry_events (event_id, name, version, category, event_ts, received_at,
    session_id, user_key, key_id, conversation_id, app_version, props, sample_rate)
SELECT gen_random_uuid(),
       (ARRAY['node.expand', 'detail_panel.view', 'bias_flag.shown'])[1 + mod(i, 3)], 1, 'ui',
       now() - mod(i, 10) * interval '1 day' - mod(i, 80000) * interval '1 second', now(),
       's-' || (i / 25), md5(mod(i, 50000)::text) || md5(mod(i, 50000)::text || 'k'), 'dev',
       'c-' || (i / 400), '1.8.0',
       jsonb_build_object('node_id', 'n-' || mod(i, 2000), 'panel', 'bias', 'depth', mod(i, 7),
                          'duration_ms', mod(i, 30000) / 7.0, 'confidence', mod(i, 100) / 100.0),
       1.0
FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) AS i
"""


def fill(engine, rows: int) -> None:  # type: ignore[no-untyped-def]
    step = 500_000
    for lo in range(1, rows + 1, step):
        with engine.begin() as conn:
            conn.execute(text(FILL), {"lo": lo, "hi": min(lo + step - 1, rows)})
        print(f"filled {min(lo + step - 1, rows)} rows", flush=True)
    with engine.begin() as conn:
        conn.execute(text("ANALYZE telemetry_events"))


def days(engine) -> list[Any]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return [
            r[0]
            for r in conn.execute(
                text("SELECT DISTINCT (event_ts AT TIME ZONE 'UTC')::date FROM telemetry_events")
            )
        ]


def ceiling_duckdb(out: Path, day_list: list[Any]) -> float:
    settings = get_settings()
    columns = warm_columns("telemetry_events", default_registry())
    con = export.connect(settings)
    started = time.perf_counter()
    for day in day_list:
        piece = export.DaySlice("telemetry_events", day, 0, 1 << 62)
        export.export_slice(con, piece, columns, out / f"duck-{day}.parquet")
    elapsed = time.perf_counter() - started
    con.close()
    return elapsed


def ceiling_csv(engine, out: Path, day_list: list[Any]) -> float:  # type: ignore[no-untyped-def]
    columns = warm_columns("telemetry_events", default_registry())
    started = time.perf_counter()
    for day in day_list:
        piece = export.DaySlice("telemetry_events", day, 0, 1 << 62)
        sql = export.select_sql(piece, columns)
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            buffer = io.BytesIO()
            cursor.execute(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER true)", stream=buffer)
            buffer.seek(0)
            table = pacsv.read_csv(buffer)
            pq.write_table(table, out / f"csv-{day}.parquet", compression="zstd")
        finally:
            raw.close()
    return time.perf_counter() - started


def snapshot_run(env: dict[str, str]) -> tuple[float, float, str]:
    """The snapshot in a process of its own: its run time, its peak RSS in MB, its output."""
    child = Path(__file__).resolve().parent / "_snapshot_child.py"
    proc = subprocess.Popen(
        [sys.executable, str(child)], env=env, stdout=subprocess.PIPE, text=True
    )
    output = proc.stdout.read() if proc.stdout else ""
    if proc.wait() != 0:
        raise SystemExit(f"the snapshot failed: {output}")
    result = json.loads(output)
    return float(result["seconds"]), float(result["peak_mb"]), output


def p95_figures(out: Path) -> tuple[float, float]:
    """The p95 over the typed column, and over the props as the hot tier keeps them (JSON)."""
    files = sorted(str(p) for p in out.glob("duck-*.parquet"))
    listing = "[" + ", ".join(f"'{f}'" for f in files) + "]"
    con = export.connect(get_settings())
    con.execute(
        "COPY (SELECT * FROM postgres_query('pg', 'SELECT props::text AS props "
        f"FROM telemetry_events')) TO '{out}/json.parquet' (FORMAT parquet, COMPRESSION zstd)"
    )

    def best(sql: str) -> float:
        times = []
        for _ in range(5):
            started = time.perf_counter()
            con.execute(sql).fetchall()
            times.append(time.perf_counter() - started)
        return min(times)

    typed = best(f"SELECT quantile_cont(props_duration_ms, 0.95) FROM read_parquet({listing})")
    as_json = best(
        "SELECT quantile_cont((json_extract_string(props, '$.duration_ms'))::DOUBLE, 0.95) "
        f"FROM read_parquet('{out}/json.parquet')"
    )
    return typed, as_json


def erasure_index_false_positives(engine, probes: int = 20_000) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    """The measured false-positive rate of the files' pseudonym filters, over keys no file holds."""
    import hashlib

    from shared.storage.warm.erasure_index import may_hold

    with engine.connect() as conn:
        indexes = [bytes(r[0]) for r in conn.execute(text("SELECT user_key_index FROM warm_files"))]
    strangers = [hashlib.sha256(f"stranger-{i}".encode()).hexdigest() * 2 for i in range(probes)]
    hits = sum(may_hold(index, key[:64]) for index in indexes for key in strangers)
    return hits / (len(indexes) * probes), len(indexes)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-snapshot-") as tmp:
        options = StackOptions(state_dir=Path(tmp), with_functions=False, persistent=False)
        with running_stack(options) as stack:
            assert stack.database_url is not None
            reset_settings()
            engine = make_engine(stack.database_url)
            print(f"filling {args.rows} rows over 10 days ...", flush=True)
            fill(engine, args.rows)
            day_list = days(engine)
            out = Path(tmp) / "ceiling"
            out.mkdir()
            duck_s = ceiling_duckdb(out, day_list)
            csv_s = ceiling_csv(engine, out, day_list)
            env = {**os.environ, **stack.env()}
            snap_s, rss_mb, output = snapshot_run(env)
            print(output.strip())
            typed_s, json_s = p95_figures(out)
            fp_rate, indexed = erasure_index_false_positives(engine)
            engine.dispose()
    rows = args.rows
    duck, csv, snap = rows / duck_s, rows / csv_s, rows / snap_s
    ceiling = max(duck, csv)
    print(f"ceiling (a) COPY CSV -> pyarrow -> Parquet   {csv:9.0f} rows/s ({csv_s:.1f} s)")
    print(f"ceiling (b) DuckDB postgres -> Parquet       {duck:9.0f} rows/s ({duck_s:.1f} s)")
    print(f"snapshot (export, checks, upload, record)   {snap:9.0f} rows/s ({snap_s:.1f} s)")
    print(
        f"p95 of duration_ms over {rows} rows: typed column {typed_s * 1000:.1f} ms, "
        f"JSON string {json_s * 1000:.1f} ms, {json_s / typed_s:.1f}x (goal >= 5x)"
    )
    print(
        f"erasure index: {indexed} files, measured false-positive rate {fp_rate:.4f} "
        f"(designed {FALSE_POSITIVE_RATE}) over keys no file holds"
    )
    print(
        f"goal: ratio >= 0.7 -> {'met' if snap / ceiling >= 0.7 else 'NOT met'}; "
        f"peak RSS under 300 MB at 10 M rows -> {'met' if rss_mb < 300 else 'NOT met'}"
        f"{'' if rows >= 10_000_000 else ' (run --rows 10000000 for the memory figure)'}"
    )
    print(
        f"snapshot: {snap:.0f} rows/s, ceiling {ceiling:.0f} rows/s, ratio {snap / ceiling:.2f}, "
        f"peak RSS {rss_mb:.0f} MB"
    )


if __name__ == "__main__":
    main()
