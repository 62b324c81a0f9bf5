"""``telemetry query``: SQL over both tiers (DuckDB locally, BigQuery at scale)."""

from __future__ import annotations

import json
from typing import Any

import click

from shared.storage.layout import TIERS
from telemetry_cli.commands import needs_stack


@needs_stack
@click.command()
@click.argument("sql")
@click.option(
    "--format",
    "output",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
)
@click.option(
    "--tier",
    type=click.Choice(TIERS),
    default="both",
    show_default=True,
    help="both: warm files plus hot rows past the watermark, no row twice.",
)
@click.option(
    "--engine",
    type=click.Choice(["duckdb", "bigquery"]),
    default="duckdb",
    show_default=True,
    help="bigquery: the same SQL, transpiled, on the external tables (warm tier only).",
)
@click.option("--dataset", default="telemetry", show_default=True, help="BigQuery dataset.")
def query(sql: str, output: str, tier: str, engine: str, dataset: str) -> None:
    """Run SQL over telemetry_events and api_calls_log, across the hot and warm tiers."""
    from shared.contract.registry import default_registry
    from shared.settings import get_settings
    from shared.storage.hot.engine import get_engine
    from shared.storage.warm.query import run_duckdb
    from telemetry_cli.bigquery import run_bigquery

    settings = get_settings()
    if engine == "bigquery":
        result = run_bigquery(settings, sql, dataset)
    else:
        result = run_duckdb(settings, get_engine(), default_registry(), sql, tier)  # type: ignore[arg-type]
    _print_result(result.columns, result.rows, output)


def _print_result(columns: list[str], rows: list[tuple[Any, ...]], output: str) -> None:
    if output == "json":
        click.echo(json.dumps([dict(zip(columns, row, strict=True)) for row in rows], default=str))
        return
    if output == "csv":
        import csv
        import io

        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
        click.echo(buffer.getvalue(), nl=False)
        return
    cells = [columns, *[["" if v is None else str(v) for v in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    for index, row in enumerate(cells):
        click.echo("  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)))
        if index == 0:
            click.echo("  ".join("-" * width for width in widths))
    click.echo(f"({len(rows)} rows)")
