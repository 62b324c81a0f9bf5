"""Build the ``telemetry-client`` wheel: the Python client as a distribution of its own.

Backend apps install it alone (``pip install telemetry-client``), without the pipeline. The
wheel holds the ``telemetry_client`` package and, under its ``_shared`` folder, a copy of
the pipeline's ``shared`` modules the client reaches (the event registry and its validator,
the price table, the settings), with their data files; their imports are rewritten to that
place, so the wheel never installs a top-level ``shared`` package of its own.

What the client needs is read from the code, as for the function bundles
(``scripts/build_bundles.py``):

* the core: every import of ``telemetry_client`` at any depth, except the function bodies of
  ``telemetry_client.pubsub`` and ``telemetry_client.archive``;
* the ``[pubsub]`` extra: what ``telemetry_client.pubsub`` reaches (straight to Pub/Sub);
* the ``[archive]`` extra: what ``telemetry_client.archive`` reaches (the cold tier).

``clients/python/pyproject.toml`` declares the dependencies a reader sees; the build fails when
they differ from what the code imports, so the two cannot drift apart. The wheel is written to
``dist/`` (``make dist``).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

import build_bundles  # beside this script
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
CLIENT_PROJECT = ROOT / "clients" / "python"
PACKAGE = "telemetry_client"
VENDORED = f"{PACKAGE}._shared"
#: The client's modules whose function bodies belong to an extra, by extra.
EXTRA_MODULES = {"pubsub": f"{PACKAGE}.pubsub", "archive": f"{PACKAGE}.archive"}
_SHARED_IMPORT = re.compile(r"^(\s*)(from|import) shared(?=[.\s])", re.MULTILINE)


@dataclass(frozen=True)
class ClientNeeds:
    """What the code of the client reaches: vendored modules and distributions per extra."""

    shared_modules: set[str]
    core: set[str]
    extras: dict[str, set[str]]


def _client_modules(root: Path) -> dict[str, Path]:
    modules = {}
    for path in sorted((root / PACKAGE).glob("*.py")):
        name = PACKAGE if path.stem == "__init__" else f"{PACKAGE}.{path.stem}"
        modules[name] = path
    return modules


def client_needs(root: Path = ROOT) -> ClientNeeds:
    """Derive the client's vendored modules and dependencies from its imports."""
    modules = _client_modules(root)
    packages = ("shared", PACKAGE)
    local, external = build_bundles.walk_imports(
        root, modules, packages, shallow=EXTRA_MODULES.values()
    )
    core = build_bundles.direct_distributions(external, PACKAGE)
    shared = {m for m in local if m.split(".")[0] == "shared"}
    extras = {}
    for extra, module in EXTRA_MODULES.items():
        others = [m for m in EXTRA_MODULES.values() if m != module]
        reached, needed = build_bundles.walk_imports(
            root, {module: modules[module]}, packages, shallow=others
        )
        shared |= {m for m in reached if m.split(".")[0] == "shared"}
        extras[extra] = build_bundles.direct_distributions(needed, module) - core
    return ClientNeeds(shared, core, extras)


def declared(project_file: Path = CLIENT_PROJECT / "pyproject.toml") -> ClientNeeds:
    """The dependencies ``clients/python/pyproject.toml`` declares (names normalized)."""
    project = tomllib.loads(project_file.read_text(encoding="utf-8"))["project"]

    def names(specs: list[str]) -> set[str]:
        return {build_bundles._normal(Requirement(spec).name) for spec in specs}

    extras = {k: names(v) for k, v in project.get("optional-dependencies", {}).items()}
    return ClientNeeds(set(), names(project["dependencies"]), extras)


def drift(needs: ClientNeeds, said: ClientNeeds) -> list[str]:
    """Where the declared dependencies and the code's imports disagree (empty: they agree)."""
    problems = []
    if needs.core != said.core:
        problems.append(f"dependencies: code {sorted(needs.core)}, declared {sorted(said.core)}")
    for extra in sorted(set(needs.extras) | set(said.extras)):
        code, told = needs.extras.get(extra, set()), said.extras.get(extra, set())
        if code != told:
            problems.append(f"[{extra}]: code {sorted(code)}, declared {sorted(told)}")
    return problems


def pin_problems(
    project_file: Path = CLIENT_PROJECT / "pyproject.toml", root: Path = ROOT
) -> list[str]:
    """Declared requirements whose version range differs from the pipeline's own (the root
    ``pyproject.toml`` is the one home of each pin)."""

    def specs(project: dict[str, object], *groups: list[str]) -> dict[str, Requirement]:
        found = {}
        for group in groups:
            for spec in group:
                requirement = Requirement(spec)
                found[build_bundles._normal(requirement.name)] = requirement
        return found

    client = tomllib.loads(project_file.read_text(encoding="utf-8"))["project"]
    pipeline = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    own = specs(pipeline, pipeline["dependencies"])
    told = specs(client, client["dependencies"], *client["optional-dependencies"].values())
    return [
        f"{name}: declared {str(requirement)!r}, the pipeline pins {str(own.get(name))!r}"
        for name, requirement in sorted(told.items())
        if str(requirement) != str(own.get(name))
    ]


def _rewrite(text: str) -> str:
    return _SHARED_IMPORT.sub(rf"\1\2 {VENDORED}", text)


def stage(root: Path, staging: Path, needs: ClientNeeds) -> None:
    """Lay out the client's source tree for the build backend."""
    shutil.copy2(CLIENT_PROJECT / "pyproject.toml", staging / "pyproject.toml")
    shutil.copy2(CLIENT_PROJECT / "README.md", staging / "README.md")
    package = staging / PACKAGE
    package.mkdir()
    for path in _client_modules(root).values():
        (package / path.name).write_text(_rewrite(path.read_text(encoding="utf-8")), "utf-8")
    vendored = package / "_shared"
    for path in build_bundles.shared_files(root, needs.shared_modules):
        target = vendored / path.relative_to(root / "shared")
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".py":
            target.write_text(_rewrite(path.read_text(encoding="utf-8")), "utf-8")
        else:
            shutil.copy2(path, target)
    build_bundles.compile_registries(vendored)


def build(out: Path, root: Path = ROOT) -> Path:
    """Build the wheel into ``out``; its path."""
    needs = client_needs(root)
    problems = drift(needs, declared()) + pin_problems()
    if problems:
        raise SystemExit(
            "clients/python/pyproject.toml does not match the client's imports:\n  "
            + "\n  ".join(problems)
        )
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="telemetry-client-") as tmp:
        staging = Path(tmp)
        stage(root, staging, needs)
        command = [build_bundles.uv(), "build", "--wheel", "--quiet"]
        subprocess.run([*command, "--out-dir", str(out), str(staging)], check=True)
    (wheel,) = sorted(out.glob("telemetry_client-*.whl"), key=lambda p: p.stat().st_mtime)[-1:]
    return wheel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist")
    args = parser.parse_args()
    wheel = build(args.out)
    needs = client_needs()
    print(f"{wheel.relative_to(ROOT) if wheel.is_relative_to(ROOT) else wheel}")
    print(f"  dependencies: {', '.join(sorted(needs.core))}")
    for extra, names in sorted(needs.extras.items()):
        print(f"  [{extra}]: {', '.join(sorted(names))}")


if __name__ == "__main__":
    main()
