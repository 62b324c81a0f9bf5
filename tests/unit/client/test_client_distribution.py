"""The client's own pyproject.toml says what its code imports, at the pipeline's pins."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "scripts"))
import build_client  # noqa: E402

sys.path.remove(str(ROOT / "scripts"))


def test_declared_dependencies_are_what_the_client_imports() -> None:
    needs = build_client.client_needs()
    assert build_client.drift(needs, build_client.declared()) == []
    assert build_client.pin_problems() == []
    assert needs.core == {"jsonschema-rs", "msgspec", "opentelemetry-api", "pyyaml"}
    assert "grpcio" in needs.extras["pubsub"] and "duckdb" in needs.extras["archive"]


def test_a_dependency_the_code_gained_is_reported_as_drift() -> None:
    needs = build_client.client_needs()
    said = build_client.declared()
    said.core.discard("msgspec")
    (problem,) = build_client.drift(needs, said)
    assert problem.startswith("dependencies:") and "msgspec" in problem


def test_a_pin_other_than_the_pipelines_is_reported(tmp_path: Path) -> None:
    text = (build_client.CLIENT_PROJECT / "pyproject.toml").read_text(encoding="utf-8")
    changed = tmp_path / "pyproject.toml"
    changed.write_text(text.replace('"msgspec>=0.19"', '"msgspec>=0.1"'), encoding="utf-8")
    (problem,) = build_client.pin_problems(changed)
    assert "msgspec" in problem and "msgspec>=0.19" in problem


def test_vendored_imports_point_inside_the_wheel() -> None:
    source = "from shared.errors import X\nimport shared.settings\n    from shared import y\n"
    assert build_client._rewrite(source) == (
        "from telemetry_client._shared.errors import X\n"
        "import telemetry_client._shared.settings\n"
        "    from telemetry_client._shared import y\n"
    )
    assert build_client._rewrite("from sharedfoo import z\n") == "from sharedfoo import z\n"
