"""OTLP decoding: protobuf and every JSON value shape, content never decoded."""

from __future__ import annotations

import pytest

from shared.contract import otlp
from shared.errors import ContractViolation
from shared.llm.genai import wanted


def test_protobuf_values_of_every_kind() -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    request = ExportTraceServiceRequest()
    resource = request.resource_spans.add()
    resource.resource.attributes.add(key="service.version").value.string_value = "1.0"
    span = resource.scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.start_time_unix_nano = bytes(16), bytes(8), 5
    span.status.code = 2
    values = span.attributes
    values.add(key="gen_ai.usage.input_tokens").value.int_value = 7
    values.add(key="gen_ai.usage.ratio").value.double_value = 0.5
    values.add(key="gen_ai.usage.flag").value.bool_value = True
    values.add(key="gen_ai.usage.list").value.array_value.values.add().int_value = 1
    values.add(key="gen_ai.usage.map").value.kvlist_value.values.add(
        key="a"
    ).value.string_value = "b"
    values.add(key="gen_ai.usage.empty")
    values.add(key="gen_ai.input.messages").value.string_value = "CANARY"
    (record,) = otlp.decode_protobuf(request.SerializeToString(), wanted)
    assert record.attributes == {
        "service.version": "1.0",
        "gen_ai.usage.input_tokens": 7,
        "gen_ai.usage.ratio": 0.5,
        "gen_ai.usage.flag": True,
        "gen_ai.usage.list": [1],
        "gen_ai.usage.map": {"a": "b"},
        "gen_ai.usage.empty": None,
    }
    assert record.status_code == otlp.STATUS_ERROR and record.trace_id == "00" * 16


def _json(value: str) -> bytes:
    return (
        '{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "'
        + "ab" * 16
        + '", "spanId": "'
        + "cd" * 8
        + '", "startTimeUnixNano": 1, "endTimeUnixNano": 2, "attributes": [{"key": '
        + '"gen_ai.usage.x", "value": '
        + value
        + "}]}]}]}]}"
    ).encode()


@pytest.mark.parametrize(
    ("value", "decoded"),
    [
        ('{"intValue": "25"}', 25),
        ('{"intValue": 25}', 25),
        ('{"doubleValue": "NaN"}', "nan"),
        ('{"doubleValue": 2}', 2.0),
        ('{"boolValue": true}', True),
        ('{"bytesValue": "AAE="}', b"\x00\x01"),
        ('{"arrayValue": {}}', []),
    ],
)
def test_json_value_shapes(value: str, decoded: object) -> None:
    (record,) = otlp.decode_json(_json(value), wanted)
    got = record.attributes["gen_ai.usage.x"]
    assert str(got) == decoded if decoded == "nan" else got == decoded


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ('{"intValue": "2.5x"}', "expected an integer"),
        ('{"doubleValue": "many"}', "is not a number"),
        ('{"doubleValue": true}', "not a number"),
        ('{"bytesValue": "***"}', "not base64"),
        ('{"mystery": 1}', "unknown AnyValue"),
        ('{"intValue": 1, "boolValue": true}', "one field"),
    ],
)
def test_bad_json_values_name_their_path(value: str, says: str) -> None:
    with pytest.raises(ContractViolation, match=says) as info:
        otlp.decode_json(_json(value), wanted)
    assert "resourceSpans[0].scopeSpans[0].spans[0].attributes[0]" in info.value.reason


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"[]", "expected an object"),
        (b'{"resourceSpans": [1]}', "expected an object"),
        (
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"attributes": {}}]}]}]}',
            "expected a list",
        ),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"attributes": [1]}]}]}]}', "key, value"),
        (
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "'
            + b"ab" * 16
            + b'", "spanId": "'
            + b"cd" * 8
            + b'", "status": {"code": "BAD"}}]}]}]}',
            "integer",
        ),
    ],
)
def test_bad_json_shapes(body: bytes, says: str) -> None:
    with pytest.raises(ContractViolation, match=says):
        otlp.decode_json(body, wanted)


def test_status_names_and_legacy_library_spans() -> None:
    body = (
        b'{"resourceSpans": [{"instrumentationLibrarySpans": [{"spans": [{"traceId": "'
        + b"ab" * 16
        + b'", "spanId": "'
        + b"cd" * 8
        + b'", "status": {"code": "STATUS_CODE_ERROR"}}]}]}]}'
    )
    (record,) = otlp.decode_json(body, wanted)
    assert record.status_code == otlp.STATUS_ERROR and record.start_ns == 0
