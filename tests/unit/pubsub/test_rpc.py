"""Publish requests stay within Pub/Sub's per-request limits; status codes are classified."""

from __future__ import annotations

import grpc

from shared.pubsub.rpc import (
    MAX_MESSAGES_PER_REQUEST,
    MAX_REQUEST_BYTES,
    _retryable,
    _status_name,
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


def test_the_library_still_exposes_the_channel_publish_rpc_reaches_into() -> None:
    """``publish_rpc`` takes ``PublisherClient().api.transport.grpc_channel``: a private path
    of google-cloud-pubsub (pinned below 3). This fails loudly the day a release moves it."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import pubsub_v1

    client = pubsub_v1.PublisherClient(credentials=AnonymousCredentials())
    try:
        channel = client.api.transport.grpc_channel
        assert isinstance(channel, grpc.Channel)
        assert callable(channel.unary_unary)
    finally:
        client.transport.close()
