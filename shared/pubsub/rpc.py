"""One Pub/Sub ``Publish`` RPC on a plain gRPC channel, within a time budget.

Ingest publishes on every request, and a cold instance answers its first beacon only once it
can publish. The client library (google-cloud-pubsub, google-api-core, proto-plus) takes longer
to import than a whole functions-framework app, and its batching ``PublisherClient`` spends a
thread and about 1 ms of CPU per batch on machinery our callers do not need: they already hold
whole batches. So :class:`PublishRpc` calls the one method, ``google.pubsub.v1.Publisher/
Publish``, on a gRPC channel of its own:

* the request is two small protobuf messages (``PublishRequest`` of ``PubsubMessage``), written
  by :func:`encode_publish_request` from the wire format (tests check it against the library's
  own message types); the answer's ``message_ids`` are counted, one per message;
* the channel is plain text to ``PUBSUB_EMULATOR_HOST`` when it is set (as the library does),
  otherwise TLS to ``pubsub.googleapis.com`` with the Application Default Credentials of the
  service account (google-auth), loaded only then;
* retries back off within the caller's budget (tenacity) on the status codes worth another
  attempt; the others are refusals.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence

import grpc

from shared.errors import ServiceUnavailable
from shared.settings import Settings, get_settings

logger = logging.getLogger(__name__)

#: Pub/Sub accepts at most 1,000 messages and 10 MB per Publish request.
MAX_MESSAGES_PER_REQUEST = 1000
MAX_REQUEST_BYTES = 9_000_000
PUBLISH_METHOD = "/google.pubsub.v1.Publisher/Publish"
PUBSUB_ENDPOINT = "pubsub.googleapis.com:443"
PUBSUB_SCOPE = "https://www.googleapis.com/auth/pubsub"
#: Status codes worth another attempt within the budget (the rest are refusals).
RETRYABLE_CODES = frozenset(
    {"UNAVAILABLE", "DEADLINE_EXCEEDED", "INTERNAL", "ABORTED", "RESOURCE_EXHAUSTED", "UNKNOWN"}
)
#: A request may be as large as Pub/Sub allows (gRPC's default caps received messages at 4 MB).
CHANNEL_OPTIONS = (("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1))

Message = tuple[bytes, Mapping[str, str]]


def request_groups(messages: Sequence[Message]) -> list[list[Message]]:
    """Group messages into Publish requests within Pub/Sub's per-request limits."""
    groups: list[list[Message]] = []
    size = 0
    for message in messages:
        length = len(message[0])
        if (
            not groups
            or len(groups[-1]) >= MAX_MESSAGES_PER_REQUEST
            or size + length > MAX_REQUEST_BYTES
        ):
            groups.append([])
            size = 0
        groups[-1].append(message)
        size += length
    return groups


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: int, payload: bytes) -> bytes:
    """One length-delimited field (wire type 2): strings, bytes, messages and map entries."""
    return bytes((tag << 3 | 2,)) + _varint(len(payload)) + payload


def encode_publish_request(topic_path: str, messages: Sequence[Message]) -> bytes:
    """A serialised ``google.pubsub.v1.PublishRequest``: ``topic`` (1) and ``messages`` (2),
    each a ``PubsubMessage`` of ``data`` (1) and the ``attributes`` map (2)."""
    parts = [_field(1, topic_path.encode())]
    for data, attributes in messages:
        body = [_field(1, data)] if data else []
        for key, value in attributes.items():
            body.append(_field(2, _field(1, key.encode()) + _field(2, value.encode())))
        parts.append(_field(2, b"".join(body)))
    return b"".join(parts)


def count_message_ids(response: bytes) -> int:
    """How many ``message_ids`` (field 1) a serialised ``PublishResponse`` holds."""
    count = position = 0
    while position < len(response):
        key, position = _read_varint(response, position)
        wire_type = key & 7
        if wire_type == 0:
            _, position = _read_varint(response, position)
        elif wire_type == 2:
            length, position = _read_varint(response, position)
            position += length
            count += key >> 3 == 1
        else:
            raise ValueError(f"unexpected wire type {wire_type} in a PublishResponse")
    if position != len(response):
        raise ValueError("truncated PublishResponse")
    return count


def _read_varint(data: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if position >= len(data):
            raise ValueError("truncated varint in a PublishResponse")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7


def _status_name(error: BaseException) -> str:
    code = getattr(error, "code", None)
    status = code() if callable(code) else None
    return getattr(status, "name", type(error).__name__)


def _retryable(error: BaseException) -> bool:
    return _status_name(error) in RETRYABLE_CODES


def open_channel(settings: Settings) -> grpc.Channel:
    """The channel to Pub/Sub: the emulator's when ``PUBSUB_EMULATOR_HOST`` is set, else
    Google's endpoint with the service account's credentials."""
    if settings.pubsub_emulator_host:
        return grpc.insecure_channel(settings.pubsub_emulator_host, options=CHANNEL_OPTIONS)
    import google.auth
    import google.auth.transport.grpc
    import google.auth.transport.urllib3
    import urllib3

    credentials, _ = google.auth.default(scopes=[PUBSUB_SCOPE])
    request = google.auth.transport.urllib3.Request(urllib3.PoolManager())  # type: ignore[no-untyped-call]
    channel: grpc.Channel = google.auth.transport.grpc.secure_authorized_channel(  # type: ignore[no-untyped-call]
        credentials, request, PUBSUB_ENDPOINT, options=CHANNEL_OPTIONS
    )
    return channel


def _with_retries(attempt: Callable[[], bytes], deadline: float) -> bytes:
    """``attempt()``, tried again with backoff until ``deadline`` while it fails in a way worth
    another try (the retry library is loaded only on a first failure)."""
    try:
        return attempt()
    except grpc.RpcError as exc:
        if not _retryable(exc):
            raise
    import tenacity

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(_retryable),
        wait=tenacity.wait_exponential_jitter(initial=0.05, max=1.0, jitter=0.05),
        stop=tenacity.stop_after_delay(max(0.0, deadline - time.monotonic())),
        reraise=True,
    )
    return retrying(attempt)


class PublishRpc:
    """Sends ``Publish`` requests on one gRPC channel; thread-safe, built once per process."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.channel = channel
        self._call: Callable[..., bytes] = channel.unary_unary(PUBLISH_METHOD)
        self._metadata: dict[str, tuple[tuple[str, str], ...]] = {}
        self._ready: grpc.Future | None = None

    def connect(self) -> None:
        """Start connecting now, in gRPC's own threads (they run without the interpreter's
        lock), so a new instance's first Publish finds the connection made or under way."""
        self._ready = grpc.channel_ready_future(self.channel)

    def _routing(self, topic_path: str) -> tuple[tuple[str, str], ...]:
        metadata = self._metadata.get(topic_path)
        if metadata is None:
            quoted = urllib.parse.quote(topic_path, safe="/")
            metadata = self._metadata[topic_path] = (("x-goog-request-params", f"topic={quoted}"),)
        return metadata

    def send(self, topic_path: str, messages: Sequence[Message], budget: float) -> int:
        """Publish ``(data, attributes)`` messages within ``budget`` seconds; the count sent.

        Raises :class:`ServiceUnavailable` when Pub/Sub cannot confirm them in time or refuses.
        """
        started = time.monotonic()
        metadata = self._routing(topic_path)
        for group in request_groups(messages):
            remaining = budget - (time.monotonic() - started)
            if remaining <= 0:
                break
            request = encode_publish_request(topic_path, group)
            deadline = time.monotonic() + remaining

            def attempt(request: bytes = request, deadline: float = deadline) -> bytes:
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    raise TimeoutError
                return self._call(request, timeout=timeout, metadata=metadata)

            try:
                response = _with_retries(attempt, deadline)
            except TimeoutError:
                break
            except grpc.RpcError as exc:
                if _retryable(exc):
                    break
                logger.error("publish refused", extra={"status": _status_name(exc)})
                raise ServiceUnavailable(
                    f"Pub/Sub refused the batch ({_status_name(exc)})", service="pubsub"
                ) from None
            confirmed = count_message_ids(response)
            if confirmed != len(group):
                raise ServiceUnavailable(
                    f"Pub/Sub confirmed {confirmed} of {len(group)} messages", service="pubsub"
                )
        else:
            return len(messages)
        raise ServiceUnavailable(
            f"Pub/Sub did not confirm the batch within {budget:.1f} s", service="pubsub"
        )


_rpc: PublishRpc | None = None
_rpc_lock = threading.Lock()


def publish_rpc() -> PublishRpc:
    """The process's :class:`PublishRpc`, on its own channel, built on first use."""
    global _rpc
    if _rpc is None:
        with _rpc_lock:
            if _rpc is None:
                _rpc = PublishRpc(open_channel(get_settings()))
    return _rpc


def reset_publish_rpc() -> None:
    """Forget the process's channel (tests, after the environment changes)."""
    global _rpc
    with _rpc_lock:
        _rpc = None
