"""The HTTP edge every HTTP function shares: bounded body reads, content types, CORS, answers.

No web framework here: functions hand over the method, headers and body stream, and map an
:class:`Answer` back to their framework's response. A whole-request problem is a
:class:`RequestProblem` carrying its status and a message that says what is wrong.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, Protocol, TypeVar, Union

import orjson
from werkzeug.http import parse_options_header

from shared.errors import TelemetryError, TerminalError, describe_decode_error

if TYPE_CHECKING:
    import msgspec

#: A function's typed action request (a msgspec struct).
ActionT = TypeVar("ActionT", bound="msgspec.Struct")

_READ_CHUNK = 64 * 1024
#: Encodings of a request body this edge can undo.
CONTENT_ENCODINGS = ("identity", "gzip")
#: Charsets a JSON body may declare.
UTF8_CHARSETS = (None, "utf-8", "utf8")


@dataclass
class Answer:
    """What a function answers: a status, a JSON body (or none) and headers; or, with ``raw``,
    bytes of the type its ``Content-Type`` header names (OTLP's protobuf answers)."""

    status: int
    body: dict[str, Any] | None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None


class RequestProblem(TerminalError):
    """A whole-request problem, answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message, status=status)
        self.status = status
        self.headers = headers or {}

    def answer(self) -> Answer:
        """The answer that explains the problem to the sender."""
        return Answer(self.status, {"error": self.message}, dict(self.headers))


class HeaderLookup(Protocol):
    """What the edge needs of request headers: a look-up by lower-case name."""

    def get(self, key: str, /) -> str | None:
        """The header's value, or None."""
        ...


def lower_case_headers(headers: HeaderLookup) -> HeaderLookup:
    """A plain dict with lower-case keys; other mappings (werkzeug's) already ignore case."""
    if isinstance(headers, dict):
        return {str(key).lower(): value for key, value in headers.items()}
    return headers


def read_limited(stream: IO[bytes], limit: int) -> bytes:
    """Read the body, refusing (413) as soon as it is over ``limit`` bytes."""
    chunks = []
    size = 0
    while True:
        chunk = stream.read(min(_READ_CHUNK, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise RequestProblem(413, f"body is over the limit of {limit} bytes")
    return b"".join(chunks)


def gunzip_limited(data: bytes, limit: int) -> bytes:
    """Inflate a gzip body, cut off as soon as the output passes ``limit`` (gzip bombs)."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, limit + 1)
        if len(out) > limit or inflater.unconsumed_tail:
            raise RequestProblem(413, f"decompressed body is over the limit of {limit} bytes")
        out += inflater.flush()
    except zlib.error:
        raise RequestProblem(400, "body is not valid gzip") from None
    if not inflater.eof:
        raise RequestProblem(400, "body is not valid gzip (truncated)")
    if len(out) > limit:
        raise RequestProblem(413, f"decompressed body is over the limit of {limit} bytes")
    return out


def parse_content_type(value: str | None) -> tuple[str, str | None]:
    """``(mimetype, charset)`` of a Content-Type header, lower-cased (werkzeug's parser)."""
    mimetype, options = parse_options_header(value or "")
    charset = options.get("charset")
    return mimetype.lower(), charset.lower() if charset else None


@dataclass(frozen=True)
class BodyLimits:
    """What a JSON endpoint accepts: media types, and sizes before and after inflating."""

    media_types: frozenset[str]
    max_bytes: int
    max_inflated_bytes: int


def read_body(headers: HeaderLookup, stream: IO[bytes], limits: BodyLimits) -> bytes:
    """The request body, checked (type, encoding, size) and inflated; never empty."""
    mimetype, charset = parse_content_type(headers.get("content-type"))
    if mimetype not in limits.media_types or charset not in UTF8_CHARSETS:
        shown = (headers.get("content-type") or "none")[:100]
        accepted = " or ".join(sorted(limits.media_types))
        raise RequestProblem(
            415, f"Content-Type {shown} is not supported; send {accepted};charset=UTF-8"
        )
    encoding = (headers.get("content-encoding") or "identity").strip().lower()
    if encoding not in CONTENT_ENCODINGS:
        raise RequestProblem(415, f"Content-Encoding {encoding[:40]} is not supported; use gzip")
    declared = headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limits.max_bytes:
        raise RequestProblem(
            413, f"body of {declared} bytes is over the limit of {limits.max_bytes} bytes"
        )
    raw = read_limited(stream, limits.max_bytes)
    if encoding == "gzip":
        raw = gunzip_limited(raw, limits.max_inflated_bytes)
    if not raw.strip():
        raise RequestProblem(400, "body is empty")
    return raw


class Cors:
    """Cross-origin rules for browser callers: which origins, and the preflight answer."""

    def __init__(self, allowed_origins: Iterable[str], methods: str, headers: str) -> None:
        self.allowed_origins = frozenset(allowed_origins)
        self.methods = methods
        self.allow_headers = headers

    def allows(self, origin: str) -> bool:
        """True when browsers of ``origin`` may call."""
        return "*" in self.allowed_origins or origin in self.allowed_origins

    def check(self, origin: str | None) -> None:
        """Refuse (403) a browser of an origin that is not allowed; no origin is a server."""
        if origin and not self.allows(origin):
            raise RequestProblem(403, f"origin {origin[:200]} is not allowed to send telemetry")

    def headers(self, origin: str | None) -> dict[str, str]:
        """The CORS headers of any answer to ``origin``."""
        if origin and self.allows(origin):
            # Retry-After is not a CORS-safelisted header: without this, a page's script sees a
            # 429 or 503 but not when to come back.
            return {
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Expose-Headers": "Retry-After",
                "Vary": "Origin",
            }
        return {"Vary": "Origin"}

    def preflight(self) -> Answer:
        """The answer to an ``OPTIONS`` preflight."""
        return Answer(
            204,
            None,
            {
                "Access-Control-Allow-Methods": self.methods,
                "Access-Control-Allow-Headers": self.allow_headers,
                "Access-Control-Max-Age": "86400",
            },
        )


def flask_response(answer: Answer) -> Any:
    """The Flask response of an answer: JSON, or the raw bytes its ``Content-Type`` names."""
    import flask

    headers = dict(answer.headers)
    if answer.raw is not None:
        body = answer.raw
    elif answer.body is None:
        body = b""
    else:
        body = orjson.dumps(answer.body)
        headers["Content-Type"] = "application/json"
    return flask.Response(body, status=answer.status, headers=headers)


def answer_request(request: Any, handle: Callable[[str, bytes], Answer], project: str) -> Any:
    """Run ``handle(method, body)`` of a private function's request with its trace bound to
    every log line, and answer it (the snapshot and lifecycle functions)."""
    from shared.observability.log import request_context

    with request_context(
        project=project,
        cloud_trace_context=request.headers.get("X-Cloud-Trace-Context"),
        traceparent=request.headers.get("traceparent"),
    ):
        answer = handle(request.method, request.get_data())
    return flask_response(answer)


def failure_answer(
    what: str, action: str, failure: TelemetryError | None, logger: logging.Logger, note: str
) -> Answer:
    """The answer to an action that failed, the one mapping every function uses: the typed
    error's own status and ``Retry-After`` (400 for a bad request, 404 for an unknown id, 409
    for work already running, 503 for a service that does not answer, 500 for a terminal
    failure); an untyped one (``failure`` None: a bug) is 500, logged with its traceback, so
    call it in the ``except``. ``note`` says what happens next, on a 5xx."""
    if failure is None:
        logger.exception(f"{what} action failed unexpectedly", extra={"action": action})
        return Answer(500, {"error": f"internal error; {note}"})
    status = failure.http_status
    headers = {"Retry-After": str(failure.retry_after_s)} if failure.retry_after_s else {}
    if status >= 500:
        log = logger.warning if failure.transient else logger.error
        log(f"{what} action failed", extra={"action": action, "error": failure.message})
        message = f"{failure.message}; {note}" if failure.transient else failure.message
        return Answer(status, {"error": message}, headers)
    return Answer(status, {"error": failure.message}, headers)


#: Most addresses an ``X-Forwarded-For`` chain may hold (proxies of ours add one or two; a
#: longer chain is a client writing its own and is refused, not parsed).
MAX_FORWARDED_ADDRESSES = 16


def client_ip(forwarded: str | None, peer: str | None, trusted_hops: int) -> str | None:
    """The sender's address: in ``X-Forwarded-For``, the entry ``trusted_hops`` from the
    right (each proxy of ours appends one; what is left of them the client wrote and is not
    trusted); without the header, the connection's peer.

    A :class:`RequestProblem` (400) when the header is malformed: too many addresses, fewer
    than the proxies of ours that must have added one, or an entry that is not an address.
    """
    if not forwarded:
        return peer
    if forwarded.count(",") >= MAX_FORWARDED_ADDRESSES:
        raise RequestProblem(
            400, f"X-Forwarded-For holds more than {MAX_FORWARDED_ADDRESSES} addresses"
        )
    chain = [part.strip() for part in forwarded.split(",")]
    if len(chain) <= trusted_hops:
        raise RequestProblem(
            400, f"X-Forwarded-For holds {len(chain)} addresses; a proxy of ours adds more"
        )
    chosen = chain[-1 - trusted_hops]
    try:
        return str(ipaddress.ip_address(chosen))
    except ValueError:
        problem = "X-Forwarded-For: the client's entry is not an IP address"
        raise RequestProblem(400, problem) from None


def decode_action(
    method: str,
    body: bytes,
    kinds: Sequence[type[ActionT]],
    default: type[ActionT] | None = None,
) -> ActionT | Answer:
    """The typed request of a private function's ``POST``, or the 405/400 answer saying what
    is wrong (naming the field and the rule).

    ``kinds`` are msgspec structs: either one struct (the body is its fields), or several
    tagged by an ``action`` field (``tag_field="action"``), each with the fields of its action.
    An empty body, or one that names no action, is the ``default`` action; unknown fields are
    refused, not ignored.
    """
    import msgspec

    if method != "POST":
        return Answer(405, {"error": f"method {method[:20]} is not allowed; use POST"})
    if not body.strip():
        if default is None:
            return Answer(400, {"error": "the body is empty; it must name an action"})
        return default()
    decoder = _action_decoder(tuple(kinds))
    try:
        try:
            request: ActionT = decoder.decode(body)
        except msgspec.ValidationError as exc:
            if default is None or "missing required field `action`" not in str(exc):
                raise
            request = _action_decoder((default,)).decode(body)  # no action named: the default
    except msgspec.ValidationError as exc:
        reason, field = describe_decode_error(exc, "body")
        if field == "body.action" or "`action`" in reason:
            tags = sorted(str(kind.__struct_config__.tag) for kind in kinds)
            reason = f"body.action: must be one of {tags}"
        return Answer(400, {"error": reason})
    except msgspec.DecodeError:
        return Answer(400, {"error": "body is not JSON"})
    return request


@functools.cache
def _action_decoder(kinds: tuple[type[Any], ...]) -> Any:
    import msgspec

    kind: Any = kinds[0] if len(kinds) == 1 else Union[kinds]  # noqa: UP007
    return msgspec.json.Decoder(kind)


def action_name(request: Any) -> str:
    """The ``action`` tag of a decoded action struct (its class name when it has none)."""
    tag = request.__struct_config__.tag
    return str(tag) if tag is not None else type(request).__name__
