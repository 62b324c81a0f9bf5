"""Walk the registry: every event has generated fixtures, a table mapping and current docs."""

from __future__ import annotations

from pathlib import Path

import pytest
from click import Command, Group

from shared.contract.registry import default_registry
from shared.contract.registry.keywords import SERVER_ONLY_CATEGORIES
from shared.contract.validation import EventValidator
from shared.storage.hot.tables import (
    CALL_ENVELOPE_COLUMNS,
    api_calls_log,
    table_for_event,
    telemetry_events,
    written_columns,
)
from telemetry_cli.cli import cli
from telemetry_cli.generator import EventGenerator
from telemetry_cli.registry.docs import render_markdown
from telemetry_cli.registry.lint import lint_registry

ROOT = Path(__file__).resolve().parents[2]
SPECS = list(default_registry())
#: What clients may send (the pipeline's own events are refused from them).
CLIENT_SPECS = [s for s in SPECS if s.category not in SERVER_ONLY_CATEGORIES]


def test_registry_is_lint_clean() -> None:
    assert lint_registry(default_registry()) == []


@pytest.mark.parametrize("spec", CLIENT_SPECS, ids=lambda s: s.key)
def test_every_event_has_valid_generated_fixtures(spec) -> None:
    generator = EventGenerator(seed=hash(spec.key) % 1000)
    validator = EventValidator()
    for _ in range(25):
        props = generator.props_for(spec)
        event = validator.validate_event(
            {
                "event_id": "0b6c7b1e-1111-4222-8333-444455556666",
                "name": spec.name,
                "version": spec.version,
                "ts": "2026-11-24T10:00:00Z",
                "props": props,
            },
            {"session_id": "s-1"},
        )
        assert event.props == props


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.key)
def test_every_event_maps_to_a_table(spec) -> None:
    expected = api_calls_log if spec.category == "llm" else telemetry_events
    assert table_for_event(spec.name) is expected


def test_llm_call_props_cover_every_api_calls_log_column() -> None:
    """The latest version's props are the table's columns; every older version's are some."""
    registry = default_registry()
    columns = set(written_columns(api_calls_log)) - CALL_ENVELOPE_COLUMNS
    versions = sorted(spec.version for spec in registry if spec.name == "llm.call")
    latest = set(registry.get("llm.call", versions[-1]).props_schema["properties"])
    assert columns == latest
    for version in versions[:-1]:
        assert set(registry.get("llm.call", version).props_schema["properties"]) <= columns


def test_docs_page_is_current() -> None:
    current = (ROOT / "docs" / "events.md").read_text(encoding="utf-8")
    assert current == render_markdown(default_registry()), "run `telemetry registry docs`"


def _commands(group: Group, prefix: str = "telemetry") -> list[tuple[str, Command]]:
    found = []
    for name, command in group.commands.items():
        full = f"{prefix} {name}"
        found.append((full, command))
        if isinstance(command, Group):
            found.extend(_commands(command, full))
    return found


@pytest.mark.parametrize(("name", "command"), _commands(cli), ids=str)
def test_every_cli_command_says_what_it_does_in_the_reference(name: str, command: Command) -> None:
    """docs/cli.md is generated from the commands' own help: each must have one."""
    assert command.help and command.help.strip(), f"{name} has no help text"
    reference = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert f"## `{name}`" in reference, "run `telemetry cli-docs`"
