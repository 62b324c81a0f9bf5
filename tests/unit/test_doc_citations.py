"""Every repository file a doc or a docstring names exists.

A citation is a path whose first part is a top-level folder of the repository (``shared/…``,
``tests/…``, ``docs/…``), a package of ``shared/`` (``storage/warm/query.py``), or a root-level
markdown file named in capitals. It must exist from the repository's root, from the citing
file's folder, or under ``shared/``; a path the build or the user makes (one git ignores, as
``terraform/bundles.auto.tfvars.json``) counts as existing. Paths with a placeholder
(``functions/<name>/main.py``, ``docs/dashboards/*.json``) are patterns, not citations.
"""

from __future__ import annotations

import ast
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_PATH = re.compile(r"(?<![\w./:@-])((?:\.?[\w-]+/)+[\w.-]*\w)")
_ROOT_DOC = re.compile(r"(?<![\w./-])([A-Z][A-Z_]+\.md)\b")
_PLACEHOLDER = set("*<{$")


def _tracked(root: Path) -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True
    )
    return listed.stdout.split()


def _texts(path: Path) -> Iterator[str]:
    """A markdown file's text, or a Python file's docstrings."""
    if path.suffix == ".md":
        yield path.read_text(encoding="utf-8")
    elif path.suffix == ".py":
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                docstring = ast.get_docstring(node, clean=False)
                if docstring:
                    yield docstring


def citations(text: str, first_parts: set[str]) -> Iterator[str]:
    """The repository paths ``text`` names."""
    for match in _PATH.finditer(text):
        token = match.group(1)
        following = text[match.end() : match.end() + 2]
        placeholder = _PLACEHOLDER & set(token) or (
            following[:1] == "/" and following[1:] in _PLACEHOLDER
        )
        if token.split("/")[0] in first_parts and not placeholder:
            yield token
    yield from (match.group(1) for match in _ROOT_DOC.finditer(text))


def _ignored(root: Path, token: str) -> bool:
    done = subprocess.run(["git", "check-ignore", "-q", token], cwd=root, check=False)
    return done.returncode == 0


def missing_citations(root: Path) -> list[str]:
    """``file: path`` for every cited path that does not exist."""
    tracked = _tracked(root)
    first_parts = {name.split("/")[0] for name in tracked if "/" in name}
    first_parts |= {p.name for p in (root / "shared").iterdir() if p.is_dir()} - {"__pycache__"}
    problems = []
    for name in tracked:
        path = root / name
        if path.suffix not in (".md", ".py") or not path.is_file():
            continue
        for text in _texts(path):
            for token in citations(text, first_parts):
                candidates = (root / token, path.parent / token, root / "shared" / token)
                if not any(c.exists() for c in candidates) and not _ignored(root, token):
                    problems.append(f"{name}: {token}")
    return sorted(set(problems))


def test_every_cited_file_exists() -> None:
    assert missing_citations(ROOT) == []


@pytest.mark.parametrize(
    ("text", "cited"),
    [
        ("see `shared/storage/warm/query.py`", ["shared/storage/warm/query.py"]),
        (
            "in storage/warm/query.py, and ARCHITECTURE.md",
            ["storage/warm/query.py", "ARCHITECTURE.md"],
        ),
        ("`functions/<name>/main.py` and docs/dashboards/*.json", []),
        ("https://example.com/shared/x.py and gs://b/docs/y.md", []),
    ],
)
def test_what_counts_as_a_citation(text: str, cited: list[str]) -> None:
    assert list(citations(text, {"shared", "docs", "storage", "functions"})) == cited


def test_a_planted_citation_of_a_missing_file_is_caught(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "shared" / "storage").mkdir(parents=True)
    (tmp_path / "shared" / "storage" / "real.py").write_text(
        '"""Reads shared/storage/real.py and storage/gone.py; see LOCAL_STACK.md."""\n',
        encoding="utf-8",
    )
    (tmp_path / "README.md").write_text("Start at `shared/storage/real.py`.\n", encoding="utf-8")
    subprocess.run(["git", "add", "-A"], cwd=tmp_path, check=True)
    assert missing_citations(tmp_path) == [
        "shared/storage/real.py: LOCAL_STACK.md",
        "shared/storage/real.py: storage/gone.py",
    ]


_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def broken_links(root: Path) -> list[str]:
    """``file: target`` for every relative markdown link that points at nothing."""
    problems = []
    for name in _tracked(root):
        path = root / name
        if path.suffix != ".md" or not path.is_file():
            continue
        for match in _LINK.finditer(path.read_text(encoding="utf-8")):
            target = match.group(1)
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (path.parent / target).exists():
                problems.append(f"{name}: {target}")
    return sorted(problems)


def test_every_relative_link_of_the_docs_resolves() -> None:
    assert broken_links(ROOT) == []


def test_a_planted_broken_link_is_caught(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("[b](b.md) [c](c.md#x) [web](https://x.y/z.md)\n")
    (tmp_path / "docs" / "b.md").write_text("# b\n")
    subprocess.run(["git", "add", "-A"], cwd=tmp_path, check=True)
    assert broken_links(tmp_path) == ["docs/a.md: c.md"]


def test_the_readme_is_short_and_points_at_every_topic_page() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 300
    pages = {p.name for p in (ROOT / "docs").glob("*.md")}
    linked = {Path(m.group(1)).name for m in _LINK.finditer(readme)}
    assert pages <= linked, f"not linked from the README: {sorted(pages - linked)}"
