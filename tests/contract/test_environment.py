"""The environment is deterministic: one installed distribution per importable top-level name.

Regression: ``python-hcl2`` and checkov's fork ``bc-python-hcl2`` both install ``hcl2``, and
whichever was written last won, so tests passed in one fresh venv and failed in another.
Checkov now lives in its own tool environment (``.tools/checkov``, from ``tools/checkov.lock``).
"""

from __future__ import annotations

from collections import defaultdict
from importlib import metadata


def _owned_modules(dist: metadata.Distribution) -> set[str]:
    """Top-level names whose code this distribution writes (namespace packages excluded)."""
    owned: set[str] = set()
    for file in dist.files or ():
        parts = file.parts
        if not parts or parts[0] == ".." or parts[0].endswith((".dist-info", ".data")):
            continue
        if len(parts) == 1 and (parts[0].endswith(".py") or ".cpython-" in parts[0]):
            owned.add(parts[0].split(".", 1)[0])
        elif len(parts) == 2 and parts[1] == "__init__.py":
            owned.add(parts[0])
    return owned


def test_no_two_installed_distributions_own_the_same_top_level_module() -> None:
    owners: dict[str, set[str]] = defaultdict(set)
    for dist in metadata.distributions():
        for module in _owned_modules(dist):
            owners[module].add(dist.metadata["Name"].lower())
    clashes = {module: sorted(dists) for module, dists in owners.items() if len(dists) > 1}
    assert clashes == {}


def test_hcl2_is_python_hcl2() -> None:
    import hcl2

    assert metadata.packages_distributions()["hcl2"] == ["python-hcl2"]
    assert hasattr(hcl2, "load")
