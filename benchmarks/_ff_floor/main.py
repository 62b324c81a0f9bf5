"""Reference functions for the ingest benchmark: how far functions-framework alone goes.

``parse_only`` parses the body and answers 202, like the bare WSGI ceiling but inside
functions-framework and Flask. ``publish_only`` also publishes the raw body to the events
topic the way ingest does (group commit on the raw gRPC stub), with no validation at all.
They bound what any ingest function can reach on this server: ingest does everything
``publish_only`` does plus the contract.
"""

from __future__ import annotations

import threading
from typing import Any

import flask
import functions_framework
import orjson

from shared.pubsub._coalesce import GroupCommit
from shared.pubsub.message import message_attributes
from shared.pubsub.publisher import topic_path
from shared.pubsub.rpc import MAX_MESSAGES_PER_REQUEST, Message, publish_rpc
from shared.settings import get_settings

_group: GroupCommit[Message] | None = None
_lock = threading.Lock()


def _answer(body: Any) -> flask.Response:
    events = body.get("events", []) if isinstance(body, dict) else []
    answer = orjson.dumps({"accepted": len(events), "sampled_out": 0, "rejected": []})
    return flask.Response(answer, status=202, headers={"Content-Type": "application/json"})


@functions_framework.http
def parse_only(request: flask.Request) -> flask.Response:
    """Parse the JSON body and answer 202."""
    return _answer(orjson.loads(request.get_data()))


@functions_framework.http
def publish_only(request: flask.Request) -> flask.Response:
    """Parse the JSON body, publish it unchanged, answer 202."""
    global _group
    if _group is None:
        with _lock:
            if _group is None:
                settings = get_settings()
                topic = topic_path(settings, settings.telemetry_topic)
                rpc = publish_rpc()
                _group = GroupCommit(
                    lambda messages, budget: rpc.send(topic, messages, budget),
                    "Pub/Sub",
                    MAX_MESSAGES_PER_REQUEST,
                )
    data = request.get_data()
    body = orjson.loads(data)
    _group.submit([(data, message_attributes(50, "bench", "floor"))], 5.0)
    return _answer(body)


@functions_framework.http
def otlp_parse_only(request: flask.Request) -> flask.Response:
    """Parse an OTLP protobuf export and answer an empty ExportTraceServiceResponse at once."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
        ExportTraceServiceResponse,
    )

    ExportTraceServiceRequest.FromString(request.get_data())
    answer = ExportTraceServiceResponse().SerializeToString()
    return flask.Response(answer, status=200, headers={"Content-Type": "application/x-protobuf"})
