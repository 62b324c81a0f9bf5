"""Render the registry's reference page (docs/events.md) from the YAML."""

from __future__ import annotations

import json
from typing import Any

from shared.contract.registry.loader import Registry

HEADER = (
    "# Event registry\n\n"
    "<!-- Generated from shared/contract/registry/events.yaml by `telemetry registry docs`. "
    "Do not edit: `make test` fails when this page has drifted. -->\n\n"
)


def _type_of(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return "one of " + ", ".join(f"`{v}`" for v in schema["enum"])
    declared = schema.get("type", "any")
    text = " or ".join(declared) if isinstance(declared, list) else str(declared)
    limits = []
    for key, label in (("minimum", "≥"), ("maximum", "≤"), ("maxLength", "max length")):
        if key in schema:
            limits.append(f"{label} {schema[key]}")
    if "pattern" in schema:
        limits.append(f"pattern `{schema['pattern']}`")
    return text + (f" ({', '.join(limits)})" if limits else "")


def render_markdown(registry: Registry) -> str:
    """The whole reference page as Markdown."""
    out = [HEADER]
    out.append(
        "| event | version | category | owner | description |\n| --- | --- | --- | --- | --- |\n"
    )
    for spec in registry:
        anchor = spec.name.replace(".", "") + f"-v{spec.version}"
        out.append(
            f"| [`{spec.name}`](#{anchor}) | {spec.version} | {spec.category} | {spec.owner} "
            f"| {spec.description} |\n"
        )
    for spec in registry:
        out.append(f"\n## `{spec.name}` v{spec.version}\n\n")
        out.append(f"{spec.description}\n\nCategory `{spec.category}`, owned by {spec.owner}.\n\n")
        required = set(spec.props_schema.get("required", []))
        out.append("| property | type | required | privacy | description |\n")
        out.append("| --- | --- | --- | --- | --- |\n")
        for name, sub in spec.props_schema.get("properties", {}).items():
            pii = {"hash": "stored as pseudonym", "drop": "never stored"}.get(sub.get("x-pii"), "")
            out.append(
                f"| `{name}` | {_type_of(sub)} | {'yes' if name in required else ''} | {pii} "
                f"| {sub.get('description', '')} |\n"
            )
        example = {
            name: sub.get("enum", [None])[0]
            if "enum" in sub
            else f"<{_type_of(sub).split(' ')[0]}>"
            for name, sub in spec.props_schema.get("properties", {}).items()
            if name in required
        }
        out.append(f"\nRequired props, shape: `{json.dumps(example)}`\n")
    return "".join(out)
