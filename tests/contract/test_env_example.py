"""`.env.example` lists every variable the settings read (and nothing they do not)."""

from __future__ import annotations

import re
from pathlib import Path

from shared.settings import variable_names

ROOT = Path(__file__).resolve().parents[2]


def test_env_example_matches_the_settings() -> None:
    listed = set(
        re.findall(r"^([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE)
    )
    read = set(variable_names())
    extra_documented = {"OTEL_EXPORTER_OTLP_HEADERS"}
    assert read - listed == set(), "add these to .env.example"
    assert listed - read - extra_documented == set(), "these are not read by the settings"
