"""The per-file erasure index: no false negatives, false positives near the designed rate."""

from __future__ import annotations

import hashlib

from shared.storage.warm.erasure_index import (
    FALSE_POSITIVE_RATE,
    build_index,
    files_that_may_hold,
    may_hold,
)


def keys(prefix: str, count: int) -> list[str]:
    return [hashlib.sha256(f"{prefix}{i}".encode()).hexdigest() for i in range(count)]


def test_a_filter_never_misses_and_rarely_names_a_stranger() -> None:
    held = keys("held", 5000)
    index = build_index(held)
    assert all(may_hold(index, key) for key in held)
    strangers = keys("stranger", 50_000)
    rate = sum(may_hold(index, key) for key in strangers) / len(strangers)
    assert rate <= 2 * FALSE_POSITIVE_RATE


def test_filters_are_the_same_in_every_process() -> None:
    assert build_index(["a", "b"]) == build_index(["b", "a"])
    assert may_hold(build_index([]), "a") is False


def test_only_files_that_may_hold_a_person_are_named() -> None:
    a, b = keys("a", 100), keys("b", 100)
    indexes = [("file-a", build_index(a)), ("file-b", build_index(b))]
    assert files_that_may_hold(indexes, [a[3]]) == ["file-a"]
    assert files_that_may_hold(indexes, [a[3], b[7]]) == ["file-a", "file-b"]
