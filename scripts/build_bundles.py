"""Build one deployable zip per function, byte for byte the same for the same code.

Each bundle holds ``functions/<name>/`` at its root (``main.py`` with the entry point) and a copy
(never a link) of ``shared/`` — with the registry, the price table and the migrations — plus a
``requirements.txt`` exported from ``uv.lock``. Files are copied to a staging folder, caches
are left out, and every entry gets a fixed timestamp and mode, so the zip's SHA-256 changes only
when the code does; it names the object (``<name>-<sha256[:16]>.zip``) that Terraform deploys.
Writes ``terraform/bundles.auto.tfvars.json`` for Terraform.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXED_TIME = (1980, 1, 1, 0, 0, 0)
EXCLUDED_PARTS = {"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
EXCLUDED_SUFFIXES = {".pyc", ".pyo"}


def _included(path: Path) -> bool:
    return not (set(path.parts) & EXCLUDED_PARTS) and path.suffix not in EXCLUDED_SUFFIXES


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


def stage(name: str, root: Path, staging: Path, requirements: str) -> None:
    """Copy a function and the contract package into ``staging``."""
    source = root / "functions" / name
    for path in sorted(source.rglob("*")):
        if path.is_file() and _included(path.relative_to(source)):
            target = staging / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    for path in sorted((root / "shared").rglob("*")):
        if path.is_file() and _included(path.relative_to(root)):
            target = staging / path.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    (staging / "requirements.txt").write_text(requirements, encoding="utf-8")


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


def build(root: Path, out: Path, names: list[str] | None = None) -> dict[str, dict[str, str]]:
    """Build the bundles into ``out``; ``{name: {"object": ..., "sha256": ..., "path": ...}}``."""
    out.mkdir(parents=True, exist_ok=True)
    requirements = requirements_txt(root)
    names = names or sorted(p.parent.name for p in (root / "functions").glob("*/main.py"))
    manifest = {}
    for name in names:
        with tempfile.TemporaryDirectory() as tmp:
            staging = Path(tmp) / name
            stage(name, root, staging, requirements)
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
