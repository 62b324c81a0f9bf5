"""``telemetry registry``: lint the registry; generate its docs, OpenAPI and TS types; release."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from shared.errors import TelemetryError
from telemetry_cli.commands import fail


@click.group()
def registry() -> None:
    """The event registry: lint, docs, release."""


@registry.command("lint")
@click.argument("path", required=False, type=click.Path(path_type=Path))
def registry_lint(path: Path | None) -> None:
    """Check the registry's rules; exits 1 and names file and line for each problem."""
    from telemetry_cli.registry.lint import lint_file

    problems = lint_file(path)
    for problem in problems:
        click.echo(str(problem), err=True)
    if problems:
        sys.exit(1)
    click.echo("registry ok")


DOCS_PATH = Path(__file__).resolve().parents[2] / "docs" / "events.md"


@registry.command("docs")
@click.option("--check", is_flag=True, help="Fail if docs/events.md differs from the registry.")
def registry_docs(check: bool) -> None:
    """Write docs/events.md from the registry (or check that it is current)."""
    from shared.contract.registry import default_registry
    from telemetry_cli.registry.docs import render_markdown

    try:
        text = render_markdown(default_registry())
    except TelemetryError as exc:
        fail(exc)
        return
    if check:
        current = DOCS_PATH.read_text(encoding="utf-8") if DOCS_PATH.exists() else ""
        if current != text:
            click.echo(
                f"{DOCS_PATH} has drifted from the registry; run `telemetry registry docs`",
                err=True,
            )
            sys.exit(1)
        click.echo("docs/events.md is current")
        return
    DOCS_PATH.parent.mkdir(parents=True, exist_ok=True)
    DOCS_PATH.write_text(text, encoding="utf-8")
    click.echo(f"wrote {DOCS_PATH}")


OPENAPI_DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


@registry.command("openapi")
@click.option("--check", is_flag=True, help="Fail if docs/openapi.json differs from the registry.")
def registry_openapi(check: bool) -> None:
    """Write ingest's OpenAPI 3.1 document (docs/openapi.json), or check that it is current;
    ingest serves the same at GET /v1/openapi.json."""
    from shared.contract.openapi import openapi_document
    from shared.contract.registry import default_registry
    from telemetry_cli.commands import write_or_check

    text = json.dumps(openapi_document(default_registry()), indent=2, sort_keys=True) + "\n"
    write_or_check({OPENAPI_DOC_PATH: text}, check, "telemetry registry openapi")


TS_PATH = Path(__file__).resolve().parents[2] / "clients" / "js" / "src" / "events.ts"


@registry.command("ts")
@click.option(
    "--check", is_flag=True, help="Fail if clients/js/src/events.ts differs from the registry."
)
def registry_ts(check: bool) -> None:
    """Write the JS client's event types (clients/js/src/events.ts) from the registry."""
    from shared.contract.registry import default_registry
    from telemetry_cli.registry.typescript import render_typescript

    text = render_typescript(default_registry())
    if check:
        current = TS_PATH.read_text(encoding="utf-8") if TS_PATH.exists() else ""
        if current != text:
            click.echo(
                f"{TS_PATH} has drifted from the registry; run `telemetry registry ts`", err=True
            )
            sys.exit(1)
        click.echo("clients/js/src/events.ts is current")
        return
    TS_PATH.write_text(text, encoding="utf-8")
    click.echo(f"wrote {TS_PATH}")


@registry.command("release")
def registry_release() -> None:
    """Pin every unreleased (name, version) in released.json; they may not change after."""
    from shared.contract.registry import default_registry
    from telemetry_cli.registry.lint import release_all

    added = release_all(default_registry())
    click.echo("released: " + (", ".join(added) if added else "nothing new"))
