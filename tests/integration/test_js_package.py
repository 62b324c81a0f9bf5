"""The web client as a front-end team gets it: ``npm pack`` of ``clients/js``, installed into a
fresh project, imported from there with its types (never from the source tree)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
JS = ROOT / "clients" / "js"
PACKAGE = json.loads((JS / "package.json").read_text(encoding="utf-8"))["name"]

CONSUMER_TS = f"""
import {{ init, track, setConsent, type EventProps }} from "{PACKAGE}";

const props: EventProps["node.expand"] = {{ node_id: "n-1", depth: 2 }};
init({{ endpoint: "/t/v1/events", consent: false }});
setConsent(true);
track("node.expand", props);
"""
#: Wrong on purpose: an event the registry does not have, and props of the wrong type.
MISTAKEN_TS = f"""
import {{ track }} from "{PACKAGE}";

track("node.explode", {{ node_id: "n-1" }});
track("node.expand", {{ node_id: 42 }});
"""
TSCONFIG = {
    "compilerOptions": {
        "strict": True,
        "noEmit": True,
        "module": "nodenext",
        "moduleResolution": "nodenext",
        "target": "es2022",
        "lib": ["es2022", "dom"],
        "skipLibCheck": False,
    },
    "files": ["consumer.ts"],
}


@pytest.fixture(scope="module")
def consumer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh project with the packed tarball installed from a file, as from a registry."""
    packed = tmp_path_factory.mktemp("packed")
    done = subprocess.run(
        ["npm", "pack", "--silent", "--pack-destination", str(packed)],
        cwd=JS,
        capture_output=True,
        text=True,
        check=True,
    )
    (tarball,) = [packed / line.strip() for line in done.stdout.splitlines() if line.strip()]
    project = tmp_path_factory.mktemp("consumer")
    (project / "package.json").write_text(
        json.dumps({"name": "consumer", "private": True, "type": "module"}), encoding="utf-8"
    )
    subprocess.run(
        ["npm", "install", "--silent", "--no-audit", "--no-fund", "--offline", str(tarball)],
        cwd=project,
        check=True,
    )
    (project / "tsconfig.json").write_text(json.dumps(TSCONFIG), encoding="utf-8")
    return project


def _tsc(project: Path) -> subprocess.CompletedProcess[str]:
    tsc = JS / "node_modules" / "typescript" / "bin" / "tsc"
    return subprocess.run(
        ["node", str(tsc), "-p", str(project / "tsconfig.json")],
        cwd=project,
        capture_output=True,
        text=True,
    )


def test_the_package_holds_only_its_build(consumer: Path) -> None:
    installed = consumer / "node_modules" / Path(*PACKAGE.split("/"))
    files = sorted(str(p.relative_to(installed)) for p in installed.rglob("*") if p.is_file())
    assert "dist/index.js" in files and "dist/index.d.ts" in files
    assert not [f for f in files if f.startswith(("src/", "test/", "scripts/", "node_modules/"))]
    assert not installed.is_symlink()  # a copy of the tarball, not a link into the tree


def test_packed_types_type_check_under_nodenext_their_relative_imports_carry_extensions(
    consumer: Path,
) -> None:
    (consumer / "consumer.ts").write_text(CONSUMER_TS, encoding="utf-8")
    done = _tsc(consumer)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_packed_types_refuse_unknown_events_and_wrong_props(consumer: Path) -> None:
    (consumer / "consumer.ts").write_text(MISTAKEN_TS, encoding="utf-8")
    done = _tsc(consumer)
    assert done.returncode != 0
    assert "node.explode" in done.stdout
    assert "number" in done.stdout and "string" in done.stdout


def test_the_installed_module_imports_from_the_consumer(consumer: Path) -> None:
    script = (
        f'const m = await import("{PACKAGE}");'
        "console.log(JSON.stringify(Object.keys(m).sort()));"
        "console.log(m.split([], 1000).length, m.uuid().length);"
    )
    node = shutil.which("node") or "node"
    done = subprocess.run(
        [node, "--input-type=module", "-e", script],
        cwd=consumer,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    exported, sizes = done.stdout.splitlines()
    assert {"init", "track", "flush", "setConsent", "identify"} <= set(json.loads(exported))
    assert sizes == "0 36"
