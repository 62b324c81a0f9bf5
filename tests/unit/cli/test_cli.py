from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from telemetry_cli.cli import cli
from telemetry_cli.commands import registry as registry_commands


def test_registry_lint_ok_and_failing_file(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["registry", "lint"]).output.strip() == "registry ok"
    bad = tmp_path / "events.yaml"
    bad.write_text("events:\n  - name: a.b\n    version: 1\n")
    result = runner.invoke(cli, ["registry", "lint", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}:2: registry: event entry lacks category" in result.output


def test_generate_is_repeatable_json_lines() -> None:
    runner = CliRunner()
    first = runner.invoke(cli, ["generate", "--sessions", "3", "--seed", "5", "--batch-size", "10"])
    assert first.exit_code == 0
    bodies = [json.loads(line) for line in first.output.splitlines()]
    assert bodies and all(1 <= len(b["events"]) <= 10 for b in bodies)
    assert {e["session_id"] for b in bodies for e in b["events"]}.__len__() == 3


def test_docs_check_detects_drift(tmp_path: Path, monkeypatch) -> None:
    runner = CliRunner()
    target = tmp_path / "events.md"
    monkeypatch.setattr(registry_commands, "DOCS_PATH", target)
    result = runner.invoke(cli, ["registry", "docs", "--check"])
    assert result.exit_code == 1 and "has drifted" in result.output
    assert runner.invoke(cli, ["registry", "docs"]).exit_code == 0
    assert target.read_text().startswith("# Event registry")
    assert runner.invoke(cli, ["registry", "docs", "--check"]).exit_code == 0


def test_check_gate_passes_on_the_repository() -> None:
    result = CliRunner().invoke(cli, ["check"])
    assert result.exit_code == 0, result.output
    assert "docs/events.md is current" in result.output


def test_release_pins_nothing_new_on_a_released_registry(tmp_path: Path, monkeypatch) -> None:
    from telemetry_cli.registry import lint

    released = tmp_path / "released.json"
    released.write_text(lint.RELEASED_PATH.read_text())
    monkeypatch.setattr(lint, "RELEASED_PATH", released)
    monkeypatch.setattr(lint.release_all, "__defaults__", (released,))
    result = CliRunner().invoke(cli, ["registry", "release"])
    assert result.output.strip() == "released: nothing new"


def test_migrate_without_database_url_is_one_clear_error(monkeypatch) -> None:
    from shared.storage.hot import engine as db

    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setattr(db, "_engine", None)
    result = CliRunner().invoke(cli, ["migrate"])
    assert result.exit_code == 1
    assert result.output.strip().startswith("error: DATABASE_URL is not set")


def test_the_command_reference_is_generated_and_checked_for_drift(
    tmp_path: Path, monkeypatch
) -> None:
    from telemetry_cli.commands import cli_docs

    target = tmp_path / "cli.md"
    monkeypatch.setattr(cli_docs, "CLI_DOCS_PATH", target)
    runner = CliRunner()
    assert runner.invoke(cli, ["cli-docs", "--check"]).exit_code == 1
    assert runner.invoke(cli, ["cli-docs"]).exit_code == 0
    text = target.read_text()
    assert runner.invoke(cli, ["cli-docs", "--check"]).exit_code == 0
    for name in cli.list_commands(None):  # type: ignore[arg-type]
        assert f"## `telemetry {name}`" in text
    assert "## `telemetry erase verify` *(services)*" in text  # a marked group's subcommand
    assert "## `telemetry generate`\n" in text  # local tooling is not marked
    assert "Usage: telemetry snapshot compact [OPTIONS]" in text
    target.write_text(text.replace("--dry-run", "--dryrun"))
    drifted = runner.invoke(cli, ["cli-docs", "--check"])
    assert drifted.exit_code == 1 and "drifted" in drifted.output


def test_the_committed_command_reference_is_current() -> None:
    assert CliRunner().invoke(cli, ["cli-docs", "--check"]).exit_code == 0


def test_stack_commands_are_marked_by_their_decorator() -> None:
    from telemetry_cli.commands import STACK_COMMANDS

    marked = {c.name for c in STACK_COMMANDS}
    assert {"migrate", "dlq", "sampling", "snapshot", "query", "erase", "metrics"} <= marked
    assert not {"dev", "generate", "registry", "check", "chaos"} & marked
