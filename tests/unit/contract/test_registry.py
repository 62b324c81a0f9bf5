from __future__ import annotations

from pathlib import Path

import pytest

from shared.contract.registry import default_registry, load_registry
from shared.errors import RegistryError, UnknownEvent
from telemetry_cli.registry.lint import lint_file, lint_registry, pinned_form, release_all

GOOD_EVENT = """
  - name: demo.click
    version: 1
    category: ui
    owner: web
    description: A click.
    props:
      type: object
      additionalProperties: false
      properties:
        target: {type: string, maxLength: 32, description: What was clicked.}
"""


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "events.yaml"
    path.write_text("events:\n" + body, encoding="utf-8")
    return path


def test_bundled_registry_has_the_seed_events() -> None:
    registry = default_registry()
    assert registry.names() >= {
        "detail_panel.view",
        "node.expand",
        "node.collapse",
        "severity.override",
        "bias.override",
        "feedback.submit",
        "consent.update",
        "ui.performance",
        "simulacra.classified",
        "bias.flagged",
        "frame.detected",
        "llm.call",
    }
    assert registry.get("llm.call", 1).category == "llm"
    assert {s.category for s in registry} == {"ui", "domain", "llm", "pipeline"}


def test_unknown_name_or_version_names_the_field() -> None:
    registry = default_registry()
    with pytest.raises(UnknownEvent, match="'nope.x' is not in the event registry") as info:
        registry.get("nope.x", 1)
    assert info.value.field == "name"
    with pytest.raises(UnknownEvent, match=r"has no version 7 \(known: \[1\]\)"):
        registry.get("node.expand", 7)


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD_EVENT + "  - name: [unclosed\n")
    with pytest.raises(RegistryError) as info:
        load_registry(path)
    assert info.value.path == str(path)
    assert info.value.line is not None and info.value.line >= 12
    assert "malformed YAML" in str(info.value)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("  - name: a.b\n    version: 1\n", "lacks category, owner, description, props"),
        (GOOD_EVENT.replace("category: ui", "category: web"), "category 'web'"),
        (GOOD_EVENT + GOOD_EVENT, "demo.click@1 is defined twice"),
        (GOOD_EVENT.replace("type: object", "type: 12"), "invalid props schema"),
        ("  - just a string\n", "events[0] is not a mapping"),
    ],
)
def test_bad_entries_are_registry_errors(tmp_path: Path, body: str, fragment: str) -> None:
    with pytest.raises(RegistryError, match=fragment.replace("[", r"\[").replace("(", r"\(")):
        load_registry(write(tmp_path, body))


def test_not_a_registry_document(tmp_path: Path) -> None:
    path = tmp_path / "events.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(RegistryError, match="'events' list"):
        load_registry(path)
    with pytest.raises(RegistryError, match="cannot read"):
        load_registry(tmp_path / "missing.yaml")


def test_entry_lines_point_at_the_event(tmp_path: Path) -> None:
    registry = load_registry(write(tmp_path, GOOD_EVENT))
    assert registry.get("demo.click", 1).line == 3


@pytest.mark.parametrize(
    ("replace", "by", "fragment"),
    [
        ("maxLength: 32, ", "", "string without maxLength"),
        ("maxLength: 32", "maxLength: 4000", "long strings are free text"),
        (
            "additionalProperties: false",
            "additionalProperties: true",
            "additionalProperties: false",
        ),
        (" description: What was clicked.", " x-pii: scramble", "x-pii must be 'hash' or 'drop'"),
        ("description: What was clicked.", "description: ''", "props.target: no description"),
        ("name: demo.click", "name: DemoClick", "dotted lower-case"),
        ("description: A click.", "description: ''", "no description"),
        ("owner: web", "owner: ' '", "no owner"),
        ("target: {", "Target: {", "snake_case"),
        (
            "{type: string, maxLength: 32,",
            "{type: array, items: {type: string}, ",
            "array without maxItems",
        ),
        (
            "description: What was clicked.}",
            "description: What was clicked, and where.}",
            "unknown keyword(s) ['and where.'] (a comma in an unquoted YAML description?)",
        ),
    ],
)
def test_lint_rules(tmp_path: Path, replace: str, by: str, fragment: str) -> None:
    path = write(tmp_path, GOOD_EVENT.replace(replace, by))
    problems = lint_registry(load_registry(path), released={})
    assert any(fragment in str(p) for p in problems), problems
    assert all(str(path) in str(p) for p in problems)


def test_long_string_is_fine_when_hashed(tmp_path: Path) -> None:
    body = GOOD_EVENT.replace("maxLength: 32,", "maxLength: 4000, x-pii: hash,")
    assert lint_registry(load_registry(write(tmp_path, body)), released={}) == []


def test_nested_strings_and_arrays_are_checked(tmp_path: Path) -> None:
    body = GOOD_EVENT.replace(
        "target: {type: string, maxLength: 32, description: What was clicked.}",
        "tags: {type: array, maxItems: 3, description: Tags., items: {type: string}}",
    )
    problems = lint_registry(load_registry(write(tmp_path, body)), released={})
    assert [p.message for p in problems] == ["props.tags[]: string without maxLength"]


def test_released_schema_may_not_change(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD_EVENT)
    released_path = tmp_path / "released.json"
    assert release_all(load_registry(path), released_path) == ["demo.click@1"]
    assert release_all(load_registry(path), released_path) == []
    import json

    released = json.loads(released_path.read_text())
    assert released["demo.click@1"] == pinned_form(load_registry(path).get("demo.click", 1))
    changed = write(tmp_path, GOOD_EVENT.replace("maxLength: 32", "maxLength: 33"))
    problems = lint_registry(load_registry(changed), released=released)
    assert [p.message for p in problems] == [
        "released schema changed; add a new version instead of editing this one"
    ]
    reworded = write(tmp_path, GOOD_EVENT.replace("What was clicked.", "The clicked target."))
    assert lint_registry(load_registry(reworded), released=released) == []
    removed = write(tmp_path, GOOD_EVENT.replace("demo.click", "demo.other"))
    problems = lint_registry(load_registry(removed), released=released)
    assert any("released event was removed" in p.message for p in problems)


def test_bundled_registry_is_clean_and_released() -> None:
    assert lint_file() == []


def test_lint_file_reports_load_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "  - name: [unclosed\n")
    (problem,) = lint_file(path)
    assert problem.path == str(path) and problem.line == 3  # where the stream ends unclosed
    assert "malformed YAML" in str(problem)
