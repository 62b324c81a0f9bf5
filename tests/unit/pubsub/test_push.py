"""Unwrapping a Pub/Sub push, including a push without attributes (functions-framework's trap)."""

from __future__ import annotations

import base64

from shared.pubsub.push import NOT_BASE64, unwrap_push


def test_push_with_and_without_attributes() -> None:
    data = base64.b64encode(b"payload").decode()
    message = unwrap_push({"message": {"data": data, "messageId": "m-7"}}, fallback_id="ce-1")
    assert (message.data, message.attributes, message.message_id) == (b"payload", {}, "m-7")
    assert message.problem is None
    message = unwrap_push({"message": {"data": data, "attributes": {"a": 1}}}, fallback_id="ce-2")
    assert message.attributes == {"a": "1"} and message.message_id == "ce-2"


def test_data_that_is_not_base64_keeps_its_text() -> None:
    message = unwrap_push({"message": {"data": "!!!", "message_id": "m-3"}})
    assert (message.data, message.problem, message.message_id) == (b"!!!", NOT_BASE64, "m-3")


def test_a_body_that_is_not_a_push_is_an_empty_message() -> None:
    for payload in (None, [], {"message": "x"}, {"message": {"attributes": ["x"]}}):
        message = unwrap_push(payload)
        assert message.data == b"" and message.attributes == {} and message.problem is None
