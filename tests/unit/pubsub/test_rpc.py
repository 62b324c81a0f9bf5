"""Publish requests stay within Pub/Sub's per-request limits; status codes are classified."""

from __future__ import annotations

import grpc
import pytest

from shared.pubsub.rpc import (
    MAX_MESSAGES_PER_REQUEST,
    MAX_REQUEST_BYTES,
    _retryable,
    _status_name,
    count_message_ids,
    encode_publish_request,
    request_groups,
)


def test_groups_split_by_count_and_by_size() -> None:
    small = [(b"x", {})] * (MAX_MESSAGES_PER_REQUEST + 1)
    assert [len(g) for g in request_groups(small)] == [MAX_MESSAGES_PER_REQUEST, 1]
    big = [(b"x" * (MAX_REQUEST_BYTES // 2 + 1), {})] * 3
    assert [len(g) for g in request_groups(big)] == [1, 1, 1]
    assert request_groups([]) == []


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code


def test_status_codes_are_retryable_or_refusals() -> None:
    assert _retryable(FakeRpcError(grpc.StatusCode.UNAVAILABLE))
    assert _retryable(FakeRpcError(grpc.StatusCode.DEADLINE_EXCEEDED))
    assert not _retryable(FakeRpcError(grpc.StatusCode.NOT_FOUND))
    assert not _retryable(FakeRpcError(grpc.StatusCode.PERMISSION_DENIED))
    assert _status_name(FakeRpcError(grpc.StatusCode.NOT_FOUND)) == "NOT_FOUND"
    assert _status_name(ValueError("x")) == "ValueError"


def test_the_publish_request_is_what_the_library_would_send() -> None:
    """The hand-written wire format decodes, with the library's own message types, to the
    topic, data and attributes given (an empty data field is left out, as proto3 does)."""
    from google.pubsub_v1.types import PublishRequest

    messages = [
        (b"\x00\x01 payload " * 40, {"source": "web", "events": "3", "\u00e9": "\u2603"}),
        (b"", {"only": "attributes"}),
        (b"x" * 300_000, {}),
    ]
    raw = encode_publish_request("projects/p/topics/telemetry-events", messages)
    decoded = PublishRequest.pb().FromString(raw)
    assert decoded.topic == "projects/p/topics/telemetry-events"
    assert [(m.data, dict(m.attributes)) for m in decoded.messages] == messages


def test_message_ids_are_counted_from_the_library_encoded_response() -> None:
    from google.pubsub_v1.types import PublishResponse

    for ids in ([], ["1"], [str(n) * 30 for n in range(200)]):
        raw = PublishResponse.pb()(message_ids=ids).SerializeToString()
        assert count_message_ids(raw) == len(ids)


def test_a_truncated_response_is_an_error_not_a_count() -> None:
    from google.pubsub_v1.types import PublishResponse

    raw = PublishResponse.pb()(message_ids=["abc", "def"]).SerializeToString()
    with pytest.raises(ValueError, match="truncated"):
        count_message_ids(raw[:-1])
    with pytest.raises(ValueError, match="truncated varint"):
        count_message_ids(b"\x0a\xff")
