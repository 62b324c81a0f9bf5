"""The HTTP edge: bounded reads, gzip bombs, content types, CORS."""

from __future__ import annotations

import gzip
import io
from typing import Annotated

import msgspec
import pytest

from shared.http import (
    Answer,
    BodyLimits,
    Cors,
    RequestProblem,
    action_name,
    decode_action,
    gunzip_limited,
    parse_content_type,
    read_body,
    read_limited,
)

LIMITS = BodyLimits(frozenset({"application/json"}), max_bytes=100, max_inflated_bytes=1000)


def test_gunzip_limited_never_inflates_past_the_limit() -> None:
    data = gzip.compress(b"a" * 10_000)
    assert gunzip_limited(data, 10_000) == b"a" * 10_000
    with pytest.raises(Exception, match="over the limit of 9999"):
        gunzip_limited(data, 9_999)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("text/plain;charset=UTF-8", ("text/plain", "utf-8")),
        ('Application/JSON; charset="utf-8"', ("application/json", "utf-8")),
        ("application/json", ("application/json", None)),
        (None, ("", None)),
    ],
)
def test_parse_content_type(value: str | None, expected: tuple[str, str | None]) -> None:
    assert parse_content_type(value) == expected


def test_read_limited_stops_at_the_limit() -> None:
    assert read_limited(io.BytesIO(b"x" * 100), 100) == b"x" * 100
    with pytest.raises(RequestProblem) as caught:
        read_limited(io.BytesIO(b"x" * 101), 100)
    assert caught.value.status == 413


@pytest.mark.parametrize(
    ("headers", "body", "status", "fragment"),
    [
        ({"content-type": "text/html"}, b"{}", 415, "Content-Type text/html is not supported"),
        ({"content-type": "application/json; charset=latin-1"}, b"{}", 415, "UTF-8"),
        ({"content-type": "application/json", "content-encoding": "br"}, b"{}", 415, "br"),
        ({"content-type": "application/json", "content-length": "101"}, b"{}", 413, "101 bytes"),
        ({"content-type": "application/json"}, b"  ", 400, "body is empty"),
        ({"content-type": "application/json", "content-encoding": "gzip"}, b"xx", 400, "gzip"),
    ],
)
def test_read_body_says_what_is_wrong(
    headers: dict[str, str], body: bytes, status: int, fragment: str
) -> None:
    with pytest.raises(RequestProblem) as caught:
        read_body(headers, io.BytesIO(body), LIMITS)
    assert caught.value.status == status and fragment in caught.value.message
    assert caught.value.answer().body == {"error": caught.value.message}


def test_read_body_inflates_gzip() -> None:
    headers = {"content-type": "application/json", "content-encoding": "gzip"}
    assert read_body(headers, io.BytesIO(gzip.compress(b'{"a": 1}')), LIMITS) == b'{"a": 1}'


def test_cors_allows_listed_origins_and_answers_preflight() -> None:
    cors = Cors(["https://app.example"], "POST, OPTIONS", "Content-Type")
    assert (
        cors.headers("https://app.example")["Access-Control-Allow-Origin"] == "https://app.example"
    )
    assert "Access-Control-Allow-Origin" not in cors.headers("https://evil.example")
    cors.check(None)  # a server-to-server call has no Origin
    with pytest.raises(RequestProblem) as caught:
        cors.check("https://evil.example")
    assert caught.value.status == 403
    preflight = cors.preflight()
    assert (
        preflight.status == 204
        and preflight.headers["Access-Control-Allow-Methods"] == "POST, OPTIONS"
    )
    assert Cors(["*"], "POST", "").allows("https://anything.example")


def test_already_running_is_409_with_retry_after_and_not_terminal() -> None:
    """The bug: "already running" was a TerminalError answered 409 by some functions and 500 by
    others, yet a later call succeeds. Now each typed error carries its own answer."""
    import logging

    from shared.errors import ContractViolation, ServiceUnavailable, TerminalError
    from shared.http import failure_answer
    from shared.storage.erasure import ErasureRunning, UnknownRequest
    from shared.storage.warm.catalog import SnapshotAlreadyRunning

    log = logging.getLogger("test")
    for busy in (SnapshotAlreadyRunning("a snapshot is running"), ErasureRunning("erasing")):
        assert busy.transient
        answer = failure_answer("x", "run", busy, log, "resumes")
        assert (answer.status, answer.headers) == (409, {"Retry-After": "60"})
        assert answer.body == {"error": busy.message}
    cases = [
        (ContractViolation("bad field", "f"), 400, {}, "bad field"),
        (UnknownRequest("no such request"), 404, {}, "no such request"),
        (ServiceUnavailable("down", "gcs"), 503, {"Retry-After": "60"}, "down; resumes"),
        (TerminalError("broken"), 500, {}, "broken"),
    ]
    for error, status, headers, message in cases:
        answer = failure_answer("x", "run", error, log, "resumes")
        assert (answer.status, answer.headers, answer.body) == (status, headers, {"error": message})
    try:
        raise ValueError("a bug")
    except ValueError:
        bug = failure_answer("x", "run", None, log, "resumes")
    assert (bug.status, bug.body) == (500, {"error": "internal error; resumes"})


class _Run(msgspec.Struct, tag_field="action", tag="run", forbid_unknown_fields=True):
    dry_run: bool = False
    days: Annotated[int, msgspec.Meta(ge=0, le=30)] = 2


class _Show(msgspec.Struct, tag_field="action", tag="show", forbid_unknown_fields=True):
    request_id: str


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"action": "run", "dry_run": true, "days": 3}', _Run(dry_run=True, days=3)),
        (b'{"action": "show", "request_id": "er-1"}', _Show(request_id="er-1")),
        (b"", _Run()),
        (b'{"days": 5}', _Run(days=5)),
    ],
)
def test_decode_action_types_the_body(body: bytes, expected: object) -> None:
    assert decode_action("POST", body, [_Run, _Show], default=_Run) == expected


@pytest.mark.parametrize(
    ("method", "body", "status", "error"),
    [
        ("GET", b"", 405, "method GET is not allowed; use POST"),
        ("POST", b"{", 400, "body is not JSON"),
        ("POST", b'{"action": "fly"}', 400, "body.action: must be one of ['run', 'show']"),
        ("POST", b'{"action": "run", "days": 31}', 400, "body.days: Expected `int` <= 30"),
        ("POST", b'{"action": "run", "dry_run": "no"}', 400, "body.dry_run: Expected `bool`"),
        ("POST", b'{"action": "show"}', 400, "missing required field `request_id`"),
        ("POST", b'{"action": "run", "verbose": 1}', 400, "unknown field `verbose`"),
        ("POST", b'{"request_id": "er-1"}', 400, "unknown field `request_id`"),
    ],
)
def test_decode_action_names_the_field_and_the_rule(
    method: str, body: bytes, status: int, error: str
) -> None:
    answer = decode_action(method, body, [_Run, _Show], default=_Run)
    assert isinstance(answer, Answer) and answer.status == status
    assert answer.body is not None and error in answer.body["error"]


def test_decode_action_without_a_default_needs_an_action() -> None:
    answer = decode_action("POST", b"", [_Run, _Show])
    assert isinstance(answer, Answer) and answer.status == 400
    missing = decode_action("POST", b'{"days": 1}', [_Run, _Show])
    assert isinstance(missing, Answer) and "must be one of" in str(missing.body)
    assert action_name(_Show(request_id="x")) == "show"
