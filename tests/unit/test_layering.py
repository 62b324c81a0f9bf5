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


def test_the_cold_tier_does_not_import_the_warm_tier() -> None:
    """Both tiers share what is below them (``shared/storage/gcs.py``), never each other."""
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in sorted((ROOT / "shared" / "storage" / "cold").rglob("*.py"))
        for line, name in _imports(ast.parse(path.read_text(encoding="utf-8")))
        if name.startswith("shared.storage.warm")
    ]
    assert found == []


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
