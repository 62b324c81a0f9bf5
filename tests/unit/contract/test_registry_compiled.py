"""A bundle's registry is parsed at build time; a stale compiled file is never trusted."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shared.contract.registry import loader
from shared.errors import RegistryError


def _copy_registry(tmp_path: Path) -> Path:
    for path in loader.REGISTRY_DIR.iterdir():
        if path.is_file() and path.suffix in (".yaml", ".json"):
            shutil.copyfile(path, tmp_path / path.name)
    return tmp_path / loader.DEFAULT_REGISTRY_PATH.name


def test_the_compiled_registry_is_the_yaml_parsed(tmp_path: Path) -> None:
    registry = _copy_registry(tmp_path)
    compiled = loader.compile_registry(registry)
    assert compiled == loader.compiled_path(registry)
    document = json.loads(compiled.read_text(encoding="utf-8"))
    assert document["events"] == loader._parse(registry, registry.read_bytes())
    assert (
        loader.load_registry(registry).specs
        == loader.load_registry(loader.DEFAULT_REGISTRY_PATH).specs
    )


def test_a_matching_compiled_file_is_read_instead_of_the_yaml(tmp_path: Path) -> None:
    registry = _copy_registry(tmp_path)
    compiled = loader.compile_registry(registry)
    document = json.loads(compiled.read_text(encoding="utf-8"))
    document["events"][0]["description"] = "read from the compiled file"
    compiled.write_text(json.dumps(document), encoding="utf-8")
    assert loader.read_registry_entries(registry)[0]["description"] == (
        "read from the compiled file"
    )


def test_a_stale_compiled_file_is_ignored(tmp_path: Path) -> None:
    registry = _copy_registry(tmp_path)
    compiled = loader.compile_registry(registry)
    document = json.loads(compiled.read_text(encoding="utf-8"))
    document["events"][0]["description"] = "stale"
    compiled.write_text(json.dumps(document), encoding="utf-8")
    registry.write_text(registry.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    assert loader.read_registry_entries(registry)[0]["description"] != "stale"
    compiled.write_text("{not json", encoding="utf-8")
    assert loader.read_registry_entries(registry)[0]["name"]


def test_reading_a_compiled_registry_imports_neither_yaml_nor_the_schema_library(
    tmp_path: Path,
) -> None:
    registry = _copy_registry(tmp_path)
    loader.compile_registry(registry)
    script = (
        "import sys\n"
        "from shared.contract.registry.loader import load_registry\n"
        f"assert load_registry({str(registry)!r}).specs\n"
        "print('yaml' in sys.modules, 'jsonschema_rs' in sys.modules)\n"
    )
    root = Path(__file__).resolve().parents[3]
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "False False"


def test_a_registry_with_an_invalid_props_schema_gets_no_compiled_file(tmp_path: Path) -> None:
    registry = _copy_registry(tmp_path)
    text = registry.read_text(encoding="utf-8")
    broken = text.replace("type: object", "type: 12", 1)
    assert broken != text
    registry.write_text(broken, encoding="utf-8")
    with pytest.raises(RegistryError, match="invalid props schema"):
        loader.compile_registry(registry)
    assert not loader.compiled_path(registry).exists()
