"""Registry lint: the rules that keep free text and silent schema changes out of storage.

* every string (at any depth) has a ``maxLength``; none is over 256 unless ``x-pii: hash``;
* ``x-pii`` is ``hash`` or ``drop``; every object forbids undeclared properties;
* every event and property is described; names are dotted lower-case and unique per version;
* each props schema is valid JSON Schema (checked against the 2020-12 meta-schema);
* a released (name, version) is unchanged (``released.json`` pins released schemas).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema_rs

from shared.contract.registry.keywords import ANNOTATION_KEYWORDS, KNOWN_KEYWORDS, PII_RULES
from shared.contract.registry.loader import REGISTRY_DIR, EventSpec, Registry, load_registry
from shared.errors import RegistryError

RELEASED_PATH = REGISTRY_DIR / "released.json"
MAX_PLAIN_STRING = 256
_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
_PROP = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True)
class LintProblem:
    """One broken rule, with the registry line of the event at fault."""

    path: str
    line: int | None
    event: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.event}: {self.message}"


def _types(schema: dict[str, Any]) -> set[str]:
    declared = schema.get("type")
    if isinstance(declared, list):
        return {str(t) for t in declared}
    if isinstance(declared, str):
        return {declared}
    if "enum" in schema:
        return {type(v).__name__ for v in schema["enum"]}
    return set()


def _check_schema(spec: EventSpec, schema: dict[str, Any], where: str) -> list[str]:
    problems: list[str] = []
    types = _types(schema)
    unknown = sorted(str(k) for k in schema if k not in KNOWN_KEYWORDS)
    if unknown:
        problems.append(
            f"{where}: unknown keyword(s) {unknown} (a comma in an unquoted YAML description?)"
        )
    pii = schema.get("x-pii")
    if pii is not None and pii not in PII_RULES:
        problems.append(f"{where}: x-pii must be 'hash' or 'drop', not {pii!r}")
    if pii == "hash" and "string" in types and schema.get("maxLength", 0) < 64:
        problems.append(f"{where}: x-pii: hash needs maxLength >= 64 (a pseudonym is 64 hex)")
    if "string" in types and "enum" not in schema:
        limit = schema.get("maxLength")
        if limit is None:
            problems.append(f"{where}: string without maxLength")
        elif limit > MAX_PLAIN_STRING and pii != "hash":
            problems.append(
                f"{where}: maxLength {limit} is over {MAX_PLAIN_STRING}; "
                "long strings are free text unless stored as x-pii: hash"
            )
    if where != "props" and not str(schema.get("description", "")).strip():
        problems.append(f"{where}: no description")
    if "object" in types:
        if schema.get("additionalProperties") is not False:
            problems.append(f"{where}: objects must set additionalProperties: false")
        required = set(schema.get("required") or [])
        for name, sub in (schema.get("properties") or {}).items():
            if sub.get("x-pii") == "drop" and name in required:
                problems.append(f"{where}.{name}: an x-pii: drop field cannot be required")
            if not _PROP.match(name):
                problems.append(f"{where}.{name}: property names are snake_case, at most 64")
            problems.extend(_check_schema(spec, sub, f"{where}.{name}"))
    if "array" in types:
        items = schema.get("items")
        if not isinstance(items, dict):
            problems.append(f"{where}: arrays must declare their items")
        else:
            problems.extend(_check_schema(spec, {**items, "description": "item"}, f"{where}[]"))
        if "maxItems" not in schema:
            problems.append(f"{where}: array without maxItems")
    return problems


def released_schemas(path: Path = RELEASED_PATH) -> dict[str, Any]:
    """The pinned schemas of released events, keyed by ``name@version``."""
    if not path.exists():
        return {}
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "dependentSchemas")


def _without_annotations(schema: Any) -> Any:
    """``schema`` with its annotation keywords removed at every depth."""
    if isinstance(schema, list):
        return [_without_annotations(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    kept: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ANNOTATION_KEYWORDS:
            continue
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            kept[key] = {name: _without_annotations(sub) for name, sub in value.items()}
        elif key in ("enum", "const", "required", "default"):
            kept[key] = value
        else:
            kept[key] = _without_annotations(value)
    return kept


def pinned_form(spec: EventSpec) -> dict[str, Any]:
    """What released.json pins for an event: the parts a consumer depends on.

    Descriptions and other annotations are left out, so mending the wording of a released
    event is not a schema change.
    """
    return {"category": spec.category, "props": _without_annotations(spec.props_schema)}


def lint_registry(registry: Registry, released: dict[str, Any] | None = None) -> list[LintProblem]:
    """Every rule the registry breaks (an empty list when it is clean)."""
    problems: list[LintProblem] = []
    for spec in registry:
        found: list[str] = []
        if not _NAME.match(spec.name):
            found.append("name must be dotted lower-case, like detail_panel.view")
        if spec.version < 1:
            found.append("version must be 1 or more")
        if not spec.description:
            found.append("no description")
        if not spec.owner.strip():
            found.append("no owner")
        try:
            jsonschema_rs.meta.validate(spec.props_schema)
        except jsonschema_rs.ValidationError as exc:
            found.append(f"props is not valid JSON Schema: {exc.message}")
        if "object" not in _types(spec.props_schema):
            found.append("props must be a JSON Schema of type object")
        found.extend(_check_schema(spec, spec.props_schema, "props"))
        problems.extend(LintProblem(registry.path, spec.line, spec.key, m) for m in found)
    for key, pinned in (released if released is not None else released_schemas()).items():
        name, _, version = key.rpartition("@")
        current = registry.specs.get((name, int(version)))
        if current is None:
            problems.append(
                LintProblem(registry.path, None, key, "released event was removed; keep it")
            )
        elif pinned_form(current) != pinned:
            problems.append(
                LintProblem(
                    registry.path,
                    current.line,
                    key,
                    "released schema changed; add a new version instead of editing this one",
                )
            )
    return problems


def lint_file(path: Path | str | None = None) -> list[LintProblem]:
    """Load a registry file and lint it; a load error becomes one problem."""
    try:
        registry = load_registry(path)
    except RegistryError as exc:
        return [LintProblem(exc.path, exc.line, "registry", exc.message.split(": ", 1)[-1])]
    return lint_registry(registry)


def release_all(registry: Registry, path: Path = RELEASED_PATH) -> list[str]:
    """Pin every current (name, version) that is not yet released; the keys added."""
    released = released_schemas(path)
    added = [spec.key for spec in registry if spec.key not in released]
    for spec in registry:
        released.setdefault(spec.key, pinned_form(spec))
    path.write_text(json.dumps(released, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return added
