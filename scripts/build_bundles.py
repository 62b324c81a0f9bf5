"""Build one deployable zip per function, byte for byte the same for the same code.

Each bundle holds ``functions/<name>/`` at its root (``main.py`` with the entry point) and a copy
(never a link) of the ``shared/`` modules that function imports, with the data files beside them
(the registry, the price table, the migrations), plus a ``requirements.txt`` of that function's
own dependency closure:

* the modules are found by reading the code: every ``import`` of the function's files, and of
  each ``shared`` module they reach, at any depth (an import inside a function body counts: that
  path may run), except those under ``if TYPE_CHECKING:``;
* each third-party module is mapped to the installed distribution whose files hold it, and
  each distribution to its own requirements (markers and extras evaluated), transitively;
* the pins and markers are the lock's (``uv export``): a fresh install gets what was tested.

So code in ``shared/`` that a function never imports brings it no dependency, and a list kept by
hand cannot drift. Files are copied to a staging folder, caches are left out, and every entry
gets a fixed timestamp and mode, so the zip's SHA-256 changes only when the code does; it names
the object (``<name>-<sha256[:16]>.zip``) that Terraform deploys. Writes
``terraform/bundles.auto.tfvars.json`` for Terraform.
"""

from __future__ import annotations

import argparse
import ast
import functools
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
FIXED_TIME = (1980, 1, 1, 0, 0, 0)
EXCLUDED_PARTS = {"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
EXCLUDED_SUFFIXES = {".pyc", ".pyo"}


def _included(path: Path) -> bool:
    return not (set(path.parts) & EXCLUDED_PARTS) and path.suffix not in EXCLUDED_SUFFIXES


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module: str, is_package: bool) -> Iterator[str]:
    """Dotted names a module imports at run time (``from a import b`` gives ``a`` and ``a.b``)."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = module.split(".")
                keep = len(parts) - node.level + (1 if is_package else 0)
                base = ".".join(parts[:keep] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
        stack.extend(ast.iter_child_nodes(node))


def _module_file(root: Path, dotted: str) -> Path | None:
    path = root.joinpath(*dotted.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_level(tree: ast.Module) -> ast.Module:
    """The statements that run at import: the module's and its classes' own, without the
    bodies of functions and methods."""
    functions = (ast.FunctionDef, ast.AsyncFunctionDef)
    body: list[ast.stmt] = []
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            body.extend(n for n in node.body if not isinstance(n, functions))
        elif not isinstance(node, functions):
            body.append(node)
    return ast.Module(body=body, type_ignores=[])


def walk_imports(
    root: Path,
    entries: dict[str, Path],
    packages: Iterable[str] = ("shared",),
    shallow: Iterable[str] = (),
) -> tuple[set[str], set[str]]:
    """``(local modules, third-party module names)`` that the ``entries`` (module name → file)
    import, following every local module they reach at any depth. ``packages`` are the
    project's importable packages under ``root``; a module in ``shallow`` contributes only
    its module-level imports (its function bodies are another distribution's concern)."""
    local_tops = set(packages)
    shallow = set(shallow)
    todo: list[tuple[str, Path]] = list(entries.items())
    seen: set[str] = set()
    local: set[str] = set()
    external: set[str] = set()
    while todo:
        module, path = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        tree: ast.Module = ast.parse(path.read_text(encoding="utf-8"), str(path))
        if module in shallow:
            tree = _module_level(tree)
        for dotted in _imports(tree, module, path.name == "__init__.py"):
            top = dotted.split(".")[0]
            if dotted in entries:
                todo.append((dotted, entries[dotted]))
            elif top in entries:
                todo.append((top, entries[top]))
            elif top in local_tops:
                parts = dotted.split(".")
                for depth in range(1, len(parts) + 1):  # packages run their __init__ first
                    prefix = ".".join(parts[:depth])
                    found = _module_file(root, prefix)
                    if found is not None:
                        local.add(prefix)
                        todo.append((prefix, found))
            elif top and top not in sys.stdlib_module_names and top != "__future__":
                external.add(dotted)
    return local, external


def imported_modules(root: Path, name: str) -> tuple[set[str], set[str]]:
    """``(shared modules, third-party module names)`` that ``functions/<name>`` imports."""
    source = root / "functions" / name
    return walk_imports(root, {p.stem: p for p in source.glob("*.py")})


def direct_distributions(external: Iterable[str], who: str) -> set[str]:
    """The installed distributions that hold these third-party modules (normalized names)."""
    direct = set()
    for module in sorted(external):
        dist = distribution_of(module)
        if dist is not None:
            direct.add(_normal(dist))
        elif not any(other.startswith(f"{module}.") for other in external):  # not a namespace
            raise SystemExit(f"{who} imports {module}, which no installed distribution holds")
    return direct


@functools.cache
def _module_index() -> dict[str, str]:
    """Installed module (dotted, as its files lay it out) → the distribution that holds it."""
    index: dict[str, str] = {}
    for dist in metadata.distributions():
        project = dist.metadata["Name"]
        for file in dist.files or ():
            parts = file.parts
            if not parts or parts[0].endswith((".dist-info", ".data")) or parts[0] == "..":
                continue
            if file.suffix == ".py" or file.suffix in (".so", ".pyd"):
                stem = file.name.split(".")[0]
                dotted = [*parts[:-1], stem] if stem != "__init__" else list(parts[:-1])
                if dotted:
                    index.setdefault(".".join(dotted), project)
    return index


def distribution_of(module: str) -> str | None:
    """The installed distribution that holds ``module`` (the longest dotted prefix found)."""
    index = _module_index()
    parts = module.split(".")
    for depth in range(len(parts), 0, -1):
        found = index.get(".".join(parts[:depth]))
        if found is not None:
            return found
    return None


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_extras(root: Path) -> dict[str, set[str]]:
    """The extras the project asks of its direct dependencies (``cloud-sql-python-connector``'s
    ``pg8000``, say), from ``pyproject.toml``."""
    import tomllib

    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras: dict[str, set[str]] = {}
    for spec in project["dependencies"]:
        requirement = Requirement(spec)
        extras.setdefault(_normal(requirement.name), set()).update(requirement.extras)
    return extras


def closure(distributions: Iterable[str], extras: dict[str, set[str]]) -> set[str]:
    """The distributions and everything they require (markers evaluated here), normalized."""
    wanted: dict[str, set[str]] = {}
    todo = [(_normal(d), set(extras.get(_normal(d), ()))) for d in distributions]
    while todo:
        name, asked = todo.pop()
        known = wanted.get(name)
        if known is not None and asked <= known:
            continue
        wanted[name] = (known or set()) | asked
        for spec in metadata.requires(name) or []:
            requirement = Requirement(spec)
            marker = requirement.marker
            if marker is None or any(
                marker.evaluate({"extra": extra}) for extra in ({""} | wanted[name])
            ):
                todo.append((_normal(requirement.name), set(requirement.extras)))
    return set(wanted)


def function_requirements(root: Path, name: str, locked: str) -> str:
    """``requirements.txt`` of one function: the lock's lines of its own closure."""
    _, external = imported_modules(root, name)
    direct = direct_distributions(external, name)
    needed = closure(direct, declared_extras(root))
    lines = [
        line
        for line in locked.splitlines()
        if line.strip() and _normal(re.split(r"[=<>!~ ;\[]", line, maxsplit=1)[0]) in needed
    ]
    return "\n".join(lines) + "\n"


def requirements_txt(root: Path) -> str:
    """Pinned runtime requirements from the lock file (no dev group, no local extras)."""
    uv = root / ".tools" / "bin" / "uv"
    command = [
        str(uv) if uv.exists() else "uv",
        "export",
        "--frozen",
        "--no-dev",
        "--no-hashes",
        "--no-emit-project",
        "--no-header",
        "--no-annotate",
    ]
    return subprocess.run(command, cwd=root, check=True, capture_output=True, text=True).stdout


def shared_files(root: Path, modules: set[str]) -> list[Path]:
    """The files of ``shared/`` a bundle carries: the modules it imports, and every file that
    is not Python (registry, prices, migration scripts: read at run time, by path)."""
    files = []
    for path in sorted((root / "shared").rglob("*")):
        if not path.is_file() or not _included(path.relative_to(root)):
            continue
        relative = path.relative_to(root).with_suffix("")
        dotted = ".".join(relative.parts[:-1] if relative.name == "__init__" else relative.parts)
        migrations = "migrations" in relative.parts
        if path.suffix != ".py" or dotted in modules or migrations:
            files.append(path)
    return files


def stage(name: str, root: Path, staging: Path, requirements: str) -> None:
    """Copy a function and the ``shared`` code it imports into ``staging``."""
    source = root / "functions" / name
    for path in sorted(source.rglob("*")):
        if path.is_file() and _included(path.relative_to(source)):
            target = staging / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    modules, _ = imported_modules(root, name)
    for path in shared_files(root, modules):
        target = staging / path.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    compile_registries(staging / "shared")
    (staging / "requirements.txt").write_text(requirements, encoding="utf-8")


def compile_registries(shared: Path) -> None:
    """Parse the event registry at build time (``events.compiled.json`` beside the YAML), so a
    cold start reads JSON and never loads the YAML parser."""
    from shared.contract.registry.loader import compile_registry

    registry = shared / "contract" / "registry" / "events.yaml"
    if registry.is_file():
        compile_registry(registry)


def write_zip(staging: Path, destination: Path) -> str:
    """Zip ``staging`` deterministically; the SHA-256 of the zip."""
    with zipfile.ZipFile(
        destination, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9
    ) as archive:
        for path in sorted(p for p in staging.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(path.relative_to(staging).as_posix(), date_time=FIXED_TIME)
            info.external_attr = 0o100644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            archive.writestr(info, path.read_bytes(), compresslevel=9)
    return hashlib.sha256(destination.read_bytes()).hexdigest()


def uv() -> str:
    """The project's uv (``make setup`` puts it in ``.tools``), else the one on the PATH."""
    local = ROOT / ".tools" / "bin" / "uv"
    return str(local) if local.exists() else "uv"


def install_environment(target: Path, packages: list[str], constraints: Path | None = None) -> Path:
    """A clean virtual environment at ``target`` with ``packages`` (pip arguments: ``-r
    requirements.txt``, a wheel) installed, as Cloud Run's build installs a bundle; its python.
    Files are hard-linked from uv's cache where it can (the same bytes, less disk)."""
    subprocess.run([uv(), "venv", "--quiet", str(target)], check=True)
    python = target / "bin" / "python"
    pinned = ["--constraint", str(constraints)] if constraints else []
    command = [uv(), "pip", "install", "--quiet", "--link-mode", "hardlink"]
    subprocess.run([*command, "--python", str(python), *pinned, *packages], check=True)
    return python


def build(root: Path, out: Path, names: list[str] | None = None) -> dict[str, dict[str, str]]:
    """Build the bundles into ``out``; ``{name: {"object": ..., "sha256": ..., "path": ...}}``."""
    out.mkdir(parents=True, exist_ok=True)
    locked = requirements_txt(root)
    names = names or sorted(p.parent.name for p in (root / "functions").glob("*/main.py"))
    manifest = {}
    for name in names:
        with tempfile.TemporaryDirectory() as tmp:
            staging = Path(tmp) / name
            stage(name, root, staging, function_requirements(root, name, locked))
            zip_path = Path(tmp) / f"{name}.zip"
            digest = write_zip(staging, zip_path)
            obj = f"{name}-{digest[:16]}.zip"
            shutil.copyfile(zip_path, out / obj)
        manifest[name] = {"object": f"bundles/{obj}", "sha256": digest, "path": str(out / obj)}
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bundles")
    parser.add_argument(
        "--tfvars", type=Path, default=ROOT / "terraform" / "bundles.auto.tfvars.json"
    )
    args = parser.parse_args()
    manifest = build(ROOT, args.out)
    args.tfvars.write_text(
        json.dumps({"function_bundles": {k: v["object"] for k, v in manifest.items()}}, indent=2)
        + "\n",
        encoding="utf-8",
    )
    for name, entry in manifest.items():
        print(f"{name}: {entry['path']} sha256 {entry['sha256']}", file=sys.stderr)


if __name__ == "__main__":
    main()
