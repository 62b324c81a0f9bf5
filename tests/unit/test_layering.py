"""``shared/`` is layered, and imports only run down: a lower layer never imports a higher one.

The order, lowest first (each package may import itself and anything below it):

    errors < settings < observability < http < policy < contract < llm < storage < pubsub
    < metrics

Errors and settings are what everything reads; observability (logs, traces, the alert
contract) and the HTTP edge come next; then the rules (policy: sampling, privacy, retention
periods, flags), the contract (registry, validation, intake), LLM pricing, the storage tiers,
messaging (Pub/Sub), and the metrics that read and alert on all of it. A higher layer hands a
lower one what it needs (an alert sender, a flag store) instead of being imported by it.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS = (
    "errors",
    "settings",
    "observability",
    "http",
    "policy",
    "contract",
    "llm",
    "storage",
    "pubsub",
    "metrics",
)


def _layer(module: str) -> str:
    return module.split(".")[1] if module.count(".") else module


def _imports(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.module))
            found.extend((node.lineno, f"{node.module}.{a.name}") for a in node.names)
    return found


def upward_imports(package: Path, layers: tuple[str, ...] = LAYERS) -> list[str]:
    """Every import (module level, function bodies, type-checking blocks alike) by which a
    module of ``package`` reaches a higher layer, as ``file:line: a -> b``."""
    rank = {name: index for index, name in enumerate(layers)}
    problems = []
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package.parent).with_suffix("")
        parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
        if len(parts) < 2:
            continue  # the package's own __init__
        source = parts[1]
        if source not in rank:
            problems.append(f"{path}: {source} is in no layer")
            continue
        for line, name in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            pieces = name.split(".")
            if pieces[0] != package.name or len(pieces) < 2 or pieces[1] not in rank:
                continue
            target = pieces[1]
            if rank[target] > rank[source]:
                problems.append(f"{path.relative_to(package.parent)}:{line}: {source} -> {target}")
    return sorted(set(problems))


def test_shared_imports_only_run_down() -> None:
    assert upward_imports(ROOT / "shared") == []


#: Each storage tier and the tiers it must not import: a tier shares only what is below all of
#: them (``shared/storage/gcs.py``, ``receipt.py``, ``audit.py``); compositions of tiers
#: (retention, erasure) live above them in ``shared/storage``.
TIER_FIREWALLS = {"hot": ("warm", "cold"), "warm": ("cold",), "cold": ("warm",)}


def tier_crossings(tier: str) -> list[str]:
    """Imports of ``shared/storage/<tier>`` that reach a tier it must not import."""
    banned = tuple(f"shared.storage.{other}" for other in TIER_FIREWALLS[tier])
    return [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in sorted((ROOT / "shared" / "storage" / tier).rglob("*.py"))
        for line, name in _imports(ast.parse(path.read_text(encoding="utf-8")))
        if name.startswith(banned)
    ]


@pytest.mark.parametrize("tier", sorted(TIER_FIREWALLS))
def test_a_storage_tier_does_not_import_another_tier(tier: str) -> None:
    assert tier_crossings(tier) == []


def test_every_package_of_shared_has_a_layer() -> None:
    packages = {p.stem if p.is_file() else p.name for p in (ROOT / "shared").iterdir()}
    packages -= {"__init__", "__pycache__"}
    assert packages <= set(LAYERS), packages - set(LAYERS)


@pytest.mark.parametrize(
    ("where", "planted"),
    [
        ("storage/tier.py", "from shared.pubsub.alerts import alert_sender\n"),
        ("settings.py", "def f():\n    import shared.metrics.catalog\n"),
    ],
)
def test_a_planted_upward_import_is_caught(tmp_path: Path, where: str, planted: str) -> None:
    package = tmp_path / "shared"
    (package / "storage").mkdir(parents=True)
    (package / "pubsub").mkdir()
    (package / "storage" / "ok.py").write_text("from shared.errors import X\n", encoding="utf-8")
    (package / where).write_text(planted, encoding="utf-8")
    problems = upward_imports(package)
    assert len(problems) == 1 and where.split("/", maxsplit=1)[0].removesuffix(".py") in problems[0]


#: Each catalog table and the one module that holds SQL against it.
TABLE_OWNERS = {
    "warm_files": "shared/storage/warm/catalog.py",
    "storage_manifests": "shared/storage/cold/manifest.py",
}


def modules_naming_table(table: str) -> list[str]:
    """Modules of ``shared/`` and ``functions/`` that name ``table`` (migrations excepted)."""
    return sorted(
        str(path.relative_to(ROOT))
        for folder in ("shared", "functions")
        for path in (ROOT / folder).rglob("*.py")
        if "migrations" not in path.parts and table in path.read_text(encoding="utf-8")
    )


@pytest.mark.parametrize(("table", "owner"), sorted(TABLE_OWNERS.items()))
def test_each_catalog_table_has_one_owning_module(table: str, owner: str) -> None:
    """Only the tier's catalog module names its table: the rest go through its functions."""
    assert modules_naming_table(table) == [owner]


def test_a_planted_tier_crossing_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    planted = tmp_path / "shared" / "storage" / "hot" / "planted.py"
    planted.parent.mkdir(parents=True)
    planted.write_text("from shared.storage.warm import catalog\n", encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    found = tier_crossings("hot")
    assert found
    assert all(
        f.startswith("shared/storage/hot/planted.py:1 imports shared.storage.warm") for f in found
    )
