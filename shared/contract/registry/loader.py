"""Load the event registry YAML into typed specs with compiled validators.

Errors name the file and line: a malformed YAML file, a missing field or a schema that does
not compile is a :class:`RegistryError` pointing at the entry at fault.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from shared.errors import RegistryError, UnknownEvent
from shared.policy.sampling import CATEGORIES, Category

if TYPE_CHECKING:
    import jsonschema_rs

REGISTRY_DIR = Path(__file__).resolve().parent
DEFAULT_REGISTRY_PATH = REGISTRY_DIR / "events.yaml"
ENVELOPE_SCHEMA_PATH = REGISTRY_DIR / "envelope.schema.json"
EVENT_SCHEMA_PATH = REGISTRY_DIR / "event.schema.json"
_REQUIRED_KEYS = ("name", "version", "category", "owner", "description", "props")
_LINE_KEY = "__line__"


class Validator:
    """A compiled JSON Schema (jsonschema-rs): a fast yes/no, and the first error when no."""

    __slots__ = ("_compiled",)

    def __init__(self, schema: dict[str, Any]) -> None:
        import jsonschema_rs  # on the first compiled schema: a cold beacon compiles none

        self._compiled = jsonschema_rs.validator_for(schema, validate_formats=True)

    def is_valid(self, instance: Any) -> bool:
        """True when ``instance`` matches the schema."""
        return bool(self._compiled.is_valid(instance))

    def first_error(self, instance: Any) -> jsonschema_rs.ValidationError | None:
        """The first way ``instance`` breaks the schema (None when it does not)."""
        return next(iter(self._compiled.iter_errors(instance)), None)


@dataclass(frozen=True)
class EventSpec:
    """One (name, version) of the registry."""

    name: str
    version: int
    category: Category
    owner: str
    description: str
    props_schema: dict[str, Any]
    line: int | None = None

    @functools.cached_property
    def validator(self) -> Validator:
        """The props schema, compiled on first use: a valid beacon takes the fast path and
        never needs it, so a cold start compiles none."""
        return Validator(self.props_schema)

    @property
    def key(self) -> str:
        """``name@version``, the spec's identity in released.json and in docs."""
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class Registry:
    """Every event the pipeline accepts, looked up by name and version."""

    path: str
    specs: dict[tuple[str, int], EventSpec]

    def get(self, name: str, version: int) -> EventSpec:
        """The spec of ``name`` at ``version``; :class:`UnknownEvent` when there is none."""
        spec = self.specs.get((name, version))
        if spec is None:
            known = sorted(v for n, v in self.specs if n == name)
            if known:
                raise UnknownEvent(
                    f"name: {name!r} has no version {version} (known: {known})", field="version"
                )
            raise UnknownEvent(f"name: {name!r} is not in the event registry", field="name")
        return spec

    def __iter__(self) -> Iterator[EventSpec]:
        return iter(sorted(self.specs.values(), key=lambda s: (s.name, s.version)))

    def __len__(self) -> int:
        return len(self.specs)

    def names(self) -> set[str]:
        """Every event name of the registry."""
        return {name for name, _ in self.specs}


@functools.cache
def _line_loader() -> type[Any]:
    """A safe loader that remembers the line of every mapping.

    libyaml's parser (PyYAML's C loader, in every PyYAML wheel): the pure-Python parser took
    longer than the rest of a cold instance's first request. PyYAML itself is imported here,
    not at module import: a bundle reads its compiled registry instead (see
    :func:`read_registry_entries`).
    """
    import yaml

    class LineLoader(yaml.CSafeLoader):
        def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
            mapping = super().construct_mapping(node, deep=deep)
            mapping[_LINE_KEY] = node.start_mark.line + 1
            return mapping

    return LineLoader


def _strip_lines(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_lines(v) for k, v in value.items() if k != _LINE_KEY}
    if isinstance(value, list):
        return [_strip_lines(v) for v in value]
    return value


def compiled_path(path: Path) -> Path:
    """Where a bundle keeps a registry file's entries, parsed at build time (JSON)."""
    return path.with_name(f"{path.stem}.compiled.json")


def compile_registry(path: Path) -> Path:
    """Write the entries of the registry file ``path`` as JSON beside it, keyed by the SHA-256
    of the file they were read from (``make bundles`` does this for each bundle).

    Every entry is checked first, props schemas against the JSON Schema meta-schema included;
    a registry that fails gets no compiled file (:class:`RegistryError`). A bundle's cold start
    therefore trusts its compiled entries and skips that check.
    """
    raw = path.read_bytes()
    entries = _parse(path, raw)
    _build_specs(entries, path, check_schemas=True)
    target = compiled_path(path)
    document = {"source_sha256": hashlib.sha256(raw).hexdigest(), "events": entries}
    target.write_text(json.dumps(document, sort_keys=True), encoding="utf-8")
    return target


def read_registry_entries(path: Path) -> list[dict[str, Any]]:
    """The raw entries of a registry file, each with its ``__line__``.

    When the compiled file beside it was made from these very bytes (same SHA-256), its
    entries are read instead: a function bundle then never imports or runs the YAML parser on
    a cold start. Any other compiled file is out of date and ignored, as Python ignores a
    stale ``.pyc``.
    """
    return _read_entries(path)[0]


def _read_entries(path: Path) -> tuple[list[dict[str, Any]], bool]:
    """The entries of a registry file, and whether they come from its compiled file (and so
    were checked when it was written)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RegistryError(f"cannot read the registry: {exc.strerror}", str(path)) from None
    try:
        compiled = json.loads(compiled_path(path).read_bytes())
    except (OSError, ValueError):
        compiled = None
    if (
        isinstance(compiled, dict)
        and compiled.get("source_sha256") == hashlib.sha256(raw).hexdigest()
        and isinstance(compiled.get("events"), list)
    ):
        entries: list[dict[str, Any]] = compiled["events"]
        return entries, True
    return _parse(path, raw), False


def _parse(path: Path, raw: bytes) -> list[dict[str, Any]]:
    import yaml

    try:
        document = yaml.load(raw.decode("utf-8"), Loader=_line_loader())  # noqa: S506 - safe loader
    except UnicodeDecodeError as exc:
        raise RegistryError(f"not UTF-8: {exc.reason}", str(path)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise RegistryError(f"malformed YAML: {problem}", str(path), line) from None
    if not isinstance(document, dict) or not isinstance(document.get("events"), list):
        raise RegistryError("expected a mapping with an 'events' list", str(path), 1)
    entries: list[dict[str, Any]] = document["events"]
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            line = document.get(_LINE_KEY)
            raise RegistryError(f"events[{index}] is not a mapping", str(path), line)
    return entries


def _schema_problem(schema: dict[str, Any]) -> str | None:
    """Why ``schema`` is not valid JSON Schema 2020-12 (None when it is)."""
    import jsonschema_rs

    try:
        jsonschema_rs.meta.validate(schema)
    except jsonschema_rs.ValidationError as exc:
        return str(exc.message)
    return None


def _build_spec(entry: dict[str, Any], path: Path, check_schema: bool) -> EventSpec:
    line = entry.get(_LINE_KEY)
    missing = [key for key in _REQUIRED_KEYS if key not in entry]
    if missing:
        raise RegistryError(f"event entry lacks {', '.join(missing)}", str(path), line)
    name, version, category = entry["name"], entry["version"], entry["category"]
    if not isinstance(name, str) or not isinstance(version, int) or isinstance(version, bool):
        raise RegistryError("name must be a string and version an integer", str(path), line)
    if category not in CATEGORIES:
        raise RegistryError(
            f"{name}@{version}: category {category!r} is not one of {list(CATEGORIES)}",
            str(path),
            line,
        )
    props = entry["props"]
    if not isinstance(props, dict):
        raise RegistryError(f"{name}@{version}: props must be a JSON Schema", str(path), line)
    schema = _strip_lines(props)
    problem = _schema_problem(schema) if check_schema else None
    if problem:
        raise RegistryError(f"{name}@{version}: invalid props schema: {problem}", str(path), line)
    return EventSpec(
        name=name,
        version=version,
        category=cast(Category, category),
        owner=str(entry["owner"]),
        description=str(entry["description"]).strip(),
        props_schema=schema,
        line=line,
    )


def load_registry(path: Path | str | None = None) -> Registry:
    """Load and compile a registry file (the bundled one by default)."""
    registry_path = Path(path) if path else DEFAULT_REGISTRY_PATH
    entries, compiled = _read_entries(registry_path)
    specs = _build_specs(entries, registry_path, check_schemas=not compiled)
    return Registry(path=str(registry_path), specs=specs)


def _build_specs(
    entries: list[dict[str, Any]], path: Path, check_schemas: bool
) -> dict[tuple[str, int], EventSpec]:
    specs: dict[tuple[str, int], EventSpec] = {}
    for entry in entries:
        spec = _build_spec(entry, path, check_schemas)
        if (spec.name, spec.version) in specs:
            raise RegistryError(f"{spec.key} is defined twice", str(path), spec.line)
        specs[(spec.name, spec.version)] = spec
    return specs


@functools.cache
def default_registry() -> Registry:
    """The bundled registry, loaded once per process."""
    return load_registry()


def load_json_schema(path: Path) -> dict[str, Any]:
    """A JSON Schema file of the registry folder."""
    result: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return result
