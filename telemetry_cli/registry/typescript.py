"""Render TypeScript types of the registry's browser events for the JS client (src/events.ts).

Enums become unions of literals, so ``track("detail_panel.view", {panel: "x"})`` does not
compile. Strings are bounded in the registry and never free text (its lint refuses that);
``x-pii: drop`` fields are left out of the types: the browser should not send them at all.
"""

from __future__ import annotations

import json
from typing import Any

from shared.contract.registry.loader import Registry

HEADER = (
    "// Generated from shared/contract/registry/events.yaml by `telemetry registry ts`.\n"
    "// Do not edit: `make test` fails when this file has drifted from the registry.\n\n"
)


def _ts_type(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return " | ".join(json.dumps(v) for v in schema["enum"])
    declared = schema.get("type", "unknown")
    kinds = declared if isinstance(declared, list) else [declared]
    mapped = {
        "string": "string",
        "integer": "number",
        "number": "number",
        "boolean": "boolean",
        "null": "null",
    }
    return " | ".join(mapped.get(k, "unknown") for k in kinds)


def render_typescript(registry: Registry, categories: tuple[str, ...] = ("ui",)) -> str:
    """``EventProps``: event name -> props type, for the events a browser sends."""
    lines = [HEADER, "export interface EventProps {\n"]
    for spec in registry:
        if spec.category not in categories:
            continue
        required = set(spec.props_schema.get("required", []))
        lines.append(f"  /** {spec.description} (v{spec.version}) */\n")
        lines.append(f"  {json.dumps(spec.name)}: {{\n")
        for name, sub in spec.props_schema.get("properties", {}).items():
            if sub.get("x-pii") == "drop":
                continue
            optional = "" if name in required else "?"
            lines.append(f"    /** {sub.get('description', '')} */\n")
            lines.append(f"    {name}{optional}: {_ts_type(sub)};\n")
        lines.append("  };\n")
    lines.append("}\n\nexport type EventName = keyof EventProps;\n")
    return "".join(lines)
