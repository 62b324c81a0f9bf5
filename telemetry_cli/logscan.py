"""``telemetry logs scan DIR``: prove no log line carries personal data.

Tests, the chaos run and staging traffic seed *canary* values — raw user ids, session ids, prop
values, transcript-like text — into what they send. Afterwards the scanner reads every line of
every log file under a folder (the functions' logs, the CLI's, exported Cloud Logging files;
gzip too) and reports each line where a canary appears, by file, line number and canary kind,
never the line or the value itself (the report must not leak what it found).
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

#: A progress line every this many files.
PROGRESS_EVERY_FILES = 200


@dataclass(frozen=True)
class Canary:
    """A value that must never be logged, and what kind of value it stands for."""

    kind: str
    value: str


@dataclass(frozen=True)
class Finding:
    """A log line holding a canary."""

    path: Path
    line: int
    kind: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: holds a canary {self.kind}"


@dataclass
class ScanReport:
    """What a scan read and found."""

    files: int = 0
    lines: int = 0
    findings: list[Finding] = field(default_factory=list)


def read_canaries(path: Path) -> list[Canary]:
    """Canaries from a file: ``kind<TAB>value`` per line (``#`` comments and blanks skipped)."""
    out = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip("\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        kind, sep, value = line.partition("\t")
        if not sep or len(value) < 8:
            raise ValueError(
                f"{path}:{number}: expected kind<TAB>value with a value of 8+ characters "
                "(a short canary would match by chance)"
            )
        out.append(Canary(kind.strip(), value))
    return out


def _files(folder: Path) -> Iterator[Path]:
    for root, _dirs, names in os.walk(folder):
        for name in sorted(names):
            path = Path(root) / name
            if path.is_file() and not path.is_symlink():
                yield path


def _lines(path: Path) -> Iterable[bytes]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        yield from handle


def scan(
    folder: Path, canaries: list[Canary], progress: Callable[[int, int], object] | None = None
) -> ScanReport:
    """Every line of every file under ``folder`` checked against every canary."""
    needles = [(c.kind, c.value.encode()) for c in canaries]
    report = ScanReport()
    for path in _files(folder):
        report.files += 1
        try:
            for number, line in enumerate(_lines(path), 1):
                report.lines += 1
                for kind, needle in needles:
                    if needle in line:
                        report.findings.append(Finding(path, number, kind))
        except (OSError, EOFError, gzip.BadGzipFile):
            continue  # a socket, a file removed meanwhile, a truncated archive: nothing to read
        if progress and report.files % PROGRESS_EVERY_FILES == 0:
            progress(report.files, report.lines)
    return report
