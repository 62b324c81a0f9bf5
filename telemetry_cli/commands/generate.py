"""``telemetry generate``: synthetic beacon bodies, as JSON lines."""

from __future__ import annotations

import json
from typing import Any

import click


@click.command()
@click.option("--sessions", default=10, show_default=True, help="Sessions to generate.")
@click.option("--seed", default=0, show_default=True, help="Random seed (same seed, same data).")
@click.option("--batch-size", default=50, show_default=True, help="Events per beacon body.")
@click.option("--out", type=click.File("w"), default="-", help="Where to write JSON lines.")
def generate(sessions: int, seed: int, batch_size: int, out: Any) -> None:
    """Write synthetic beacon bodies (one JSON object per line), driven by the registry."""
    from telemetry_cli.generator import EventGenerator

    generator = EventGenerator(seed=seed)
    for body in generator.envelopes(sessions, batch_size=batch_size):
        out.write(json.dumps(body) + "\n")
