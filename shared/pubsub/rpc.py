"""One Pub/Sub ``Publish`` RPC, made as cheaply as Python allows, within a time budget.

The library's batching ``PublisherClient`` spends a thread and about 1 ms of CPU per batch on
its machinery, and even its generated (GAPIC) ``publish`` method spends about 0.3 ms per call
converting proto-plus messages and stacking retry, timeout, logging and error-mapping wrappers.
Our callers already hold whole batches, so :class:`PublishRpc` serialises a plain protobuf
``PublishRequest`` and calls the ``Publish`` method on the transport's own channel: the
library still chooses the endpoint, the credentials and the emulator
(``PUBSUB_EMULATOR_HOST``), and retries stay google-api-core's :class:`Retry`.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import grpc
from google.api_core.exceptions import RetryError
from google.api_core.retry import Retry

from shared.errors import ServiceUnavailable

logger = logging.getLogger(__name__)

#: Pub/Sub accepts at most 1,000 messages and 10 MB per Publish request.
MAX_MESSAGES_PER_REQUEST = 1000
MAX_REQUEST_BYTES = 9_000_000
PUBLISH_METHOD = "/google.pubsub.v1.Publisher/Publish"
#: Status codes worth another attempt within the budget (the rest are refusals).
RETRYABLE_CODES = frozenset(
    {"UNAVAILABLE", "DEADLINE_EXCEEDED", "INTERNAL", "ABORTED", "RESOURCE_EXHAUSTED", "UNKNOWN"}
)

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


def _status_name(error: BaseException) -> str:
    code = getattr(error, "code", None)
    status = code() if callable(code) else None
    return getattr(status, "name", type(error).__name__)


def _retryable(error: BaseException) -> bool:
    return _status_name(error) in RETRYABLE_CODES


class PublishRpc:
    """Sends ``Publish`` requests on one gRPC channel; thread-safe, built once per process."""

    def __init__(self, channel: Any) -> None:
        from google.pubsub_v1.types import PublishRequest, PublishResponse, PubsubMessage

        self._request = PublishRequest.pb()
        self._message = PubsubMessage.pb()
        self._call: Callable[..., Any] = channel.unary_unary(
            PUBLISH_METHOD,
            request_serializer=self._request.SerializeToString,
            response_deserializer=PublishResponse.pb().FromString,
        )
        self._metadata: dict[str, tuple[tuple[str, str], ...]] = {}

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
            request = self._request(
                topic=topic_path,
                messages=[self._message(data=data, attributes=attrs) for data, attrs in group],
            )
            deadline = time.monotonic() + remaining

            def attempt(request: Any = request, deadline: float = deadline) -> Any:
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    raise TimeoutError
                return self._call(request, timeout=timeout, metadata=metadata)

            retry = Retry(
                predicate=_retryable, initial=0.05, maximum=1.0, multiplier=2.0, timeout=remaining
            )
            try:
                retry(attempt)()
            except (RetryError, TimeoutError):
                break
            except grpc.RpcError as exc:
                if _retryable(exc):
                    break
                logger.error("publish refused", extra={"status": _status_name(exc)})
                raise ServiceUnavailable(
                    f"Pub/Sub refused the batch ({_status_name(exc)})", service="pubsub"
                ) from None
        else:
            return len(messages)
        raise ServiceUnavailable(
            f"Pub/Sub did not confirm the batch within {budget:.1f} s", service="pubsub"
        )


_rpc: PublishRpc | None = None
_rpc_lock = threading.Lock()


def publish_rpc() -> PublishRpc:
    """The process's :class:`PublishRpc`, on the library's channel, built on first use."""
    global _rpc
    if _rpc is None:
        with _rpc_lock:
            if _rpc is None:
                from google.cloud import pubsub_v1  # type: ignore[attr-defined]

                _rpc = PublishRpc(pubsub_v1.PublisherClient().api.transport.grpc_channel)
    return _rpc


def reset_publish_rpc() -> None:
    """Forget the process's channel (tests, after the environment changes)."""
    global _rpc
    with _rpc_lock:
        _rpc = None
