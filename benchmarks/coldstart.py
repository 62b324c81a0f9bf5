"""Cold start of each function as it ships: its bundle, installed alone, in fresh processes.

Each function's bundle is built by ``scripts/build_bundles.py`` and its ``requirements.txt``
installed into a virtual environment of its own, as Cloud Run's build does; a bare
functions-framework hello function gets one too (functions-framework alone). Then, in fresh
processes taking turns for several rounds (the medians are compared: this machine is noisy):

* (after one uncounted round that writes the bytecode caches, as an image build does)
  the import of each function's ``main`` module, from spawning the interpreter to its exit,
  as functions-framework imports it on a cold start;
* ingest's first accepted beacon (202, published to the Pub/Sub emulator), from spawning
  ``functions-framework`` to the answer, beside the hello function's first answer.

Last line: ``coldstart: ingest <t> s, hello <h> s, ratio <r>; first beacon <f> s vs hello <g> s,
ratio <q>; sink <r>x; snapshot <r>x; lifecycle <r>x; anomaly <r>x``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import build_bundles  # noqa: E402

from telemetry_cli.stack.devstack import StackOptions, running_stack  # noqa: E402
from telemetry_cli.stack.process import free_port  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
FUNCTIONS = ("ingest", "sink", "snapshot", "lifecycle", "anomaly")
HELLO = """import functions_framework


@functions_framework.http
def hello(request):
    return "ok"
"""


def environment(folder: Path, requirements: Path) -> Path:
    """A fresh virtual environment in ``folder`` with ``requirements`` installed; its python."""
    python: Path = build_bundles.install_environment(folder / ".venv", ["-r", str(requirements)])
    return python


def prepare(work: Path) -> dict[str, tuple[Path, Path]]:
    """``{name: (source folder, python)}`` for every function and the hello function."""
    built = build_bundles.build(ROOT, work / "zips")
    made = {}
    for name in FUNCTIONS:
        folder = work / name
        with zipfile.ZipFile(built[name]["path"]) as archive:
            archive.extractall(folder)
        packages = len((folder / "requirements.txt").read_text().splitlines())
        python = environment(folder, folder / "requirements.txt")
        size = sum(p.stat().st_size for p in (folder / ".venv").rglob("*") if p.is_file())
        print(f"{name}: {packages} packages, {size / 1e6:.0f} MB installed")
        made[name] = (folder, python)
    hello = work / "hello"
    hello.mkdir()
    (hello / "main.py").write_text(HELLO, encoding="utf-8")
    pins = [
        line
        for line in build_bundles.function_requirements(
            ROOT, "ingest", build_bundles.requirements_txt(ROOT)
        ).splitlines()
        if line.startswith("functions-framework==")
    ]
    (hello / "requirements.txt").write_text("\n".join(pins) + "\n", encoding="utf-8")
    made["hello"] = (hello, environment(hello, hello / "requirements.txt"))
    return made


def import_seconds(folder: Path, python: Path, env: dict[str, str]) -> float:
    """Spawn to exit of an interpreter that imports the function's module."""
    started = time.perf_counter()
    subprocess.run([str(python), "-c", "import main"], cwd=folder, env=env, check=True)
    return time.perf_counter() - started


@dataclass(frozen=True)
class Probe:
    """The request a cold function must answer with a 2xx."""

    path: str
    method: str = "GET"
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


def first_answer(
    folder: Path, python: Path, target: str, env: dict[str, str], probe: Probe
) -> float:
    """Spawn of functions-framework to the first 2xx answer to ``probe``."""
    port = free_port()
    url = f"http://127.0.0.1:{port}{probe.path}"
    launcher = folder / ".venv" / "bin" / "functions-framework"
    started = time.perf_counter()
    proc = subprocess.Popen(
        [str(launcher), "--source", "main.py", "--target", target, "--port", str(port)],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            attempt = urllib.request.Request(
                url, data=probe.body, headers=probe.headers, method=probe.method
            )
            try:
                with urllib.request.urlopen(attempt, timeout=30) as answer:
                    if 200 <= answer.status < 300:
                        return time.perf_counter() - started
            except (urllib.error.URLError, ConnectionError):
                pass
            if proc.poll() is not None:
                raise SystemExit(f"{target} exited before answering")
            time.sleep(0.005)
    finally:
        proc.terminate()
        proc.wait(10)


def beacon() -> Probe:
    body = {
        "context": {"session_id": f"s-{uuid.uuid4().hex[:8]}"},
        "events": [
            {
                "event_id": str(uuid.uuid4()),
                "name": "node.expand",
                "ts": datetime.now(UTC).isoformat(),
                "props": {"node_id": "n-1"},
            }
        ],
    }
    return Probe(
        "/v1/events",
        "POST",
        json.dumps(body).encode(),
        {"Content-Type": "text/plain;charset=UTF-8"},
    )


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-coldstart-") as tmp:
        made = prepare(Path(tmp))
        options = StackOptions.from_environment(
            state_dir=Path(tmp) / "state", with_functions=False, persistent=False
        )
        with running_stack(options) as stack:
            env = {
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("PYTHON", "VIRTUAL_ENV", "COVERAGE"))
            }
            env.update(stack.env())
            imports: dict[str, list[float]] = {name: [] for name in made}
            beacons: list[float] = []
            hellos: list[float] = []
            get = Probe("/")
            # An uncounted first round writes each environment's bytecode caches, as the
            # install step of an image build does (the first import would compile instead).
            for folder, python in made.values():
                import_seconds(folder, python, env)
            first_answer(*made["hello"], "hello", env, get)
            first_answer(*made["ingest"], "ingest", env, beacon())
            for turn in range(ROUNDS):
                for name, (folder, python) in made.items():
                    imports[name].append(import_seconds(folder, python, env))
                hellos.append(first_answer(*made["hello"], "hello", env, get))
                beacons.append(first_answer(*made["ingest"], "ingest", env, beacon()))
                print(
                    f"round {turn + 1}: import ingest {imports['ingest'][-1]:.3f} s, hello "
                    f"{imports['hello'][-1]:.3f} s; first beacon {beacons[-1]:.3f} s, hello "
                    f"{hellos[-1]:.3f} s"
                )
    median = {name: statistics.median(times) for name, times in imports.items()}
    hello = median["hello"]
    for name in FUNCTIONS:
        print(f"import {name}: {median[name]:.3f} s, {median[name] / hello:.2f}x hello")
    beacon_s, hello_s = statistics.median(beacons), statistics.median(hellos)
    others = "; ".join(f"{name} {median[name] / hello:.2f}x" for name in FUNCTIONS[1:])
    print(
        f"coldstart: ingest {median['ingest']:.3f} s, hello {hello:.3f} s, ratio "
        f"{median['ingest'] / hello:.2f}; first beacon {beacon_s:.3f} s vs hello {hello_s:.3f} s, "
        f"ratio {beacon_s / hello_s:.2f}; {others}"
    )


if __name__ == "__main__":
    main()
