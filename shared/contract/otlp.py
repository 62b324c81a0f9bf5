"""OTLP/HTTP trace exports, read as protobuf or JSON into plain span records.

Only the attributes the GenAI mapping reads are decoded (:data:`shared.llm.genai.WANTED`):
message content (``gen_ai.input.messages``, prompts, completions, tool arguments) is never
even turned into a Python string, so it cannot reach storage or a log line. The names of a
span's other attributes are kept, for ``telemetry otlp report``; their values never are.

OTLP/JSON is not protobuf's own JSON mapping: trace and span ids are hex, not base64, and every
int64 may be a number or a string (``{"intValue": "25"}``); both are read here, as are the
legacy ``instrumentationLibrarySpans``. Anything that is not an export request is a
:class:`ContractViolation` naming the path of the first problem.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from shared.errors import ContractViolation


@dataclass(frozen=True)
class Wanted:
    """Which attribute keys are decoded: these keys, and any key with one of these prefixes."""

    keys: frozenset[str]
    prefixes: tuple[str, ...]

    def __call__(self, key: str) -> bool:
        """Whether ``key`` is decoded."""
        return key in self.keys or key.startswith(self.prefixes)


STATUS_UNSET, STATUS_OK, STATUS_ERROR = 0, 1, 2


@dataclass
class SpanRecord:
    """One span: ids in hex, times in ns since the epoch, the wanted attributes (the span's over
    its resource's)."""

    trace_id: str
    span_id: str
    name: str
    start_ns: int
    end_ns: int
    status_code: int
    attributes: dict[str, Any] = field(default_factory=dict)
    #: The instrumentation scope that made the span (its library), and its version.
    scope_name: str = ""
    scope_version: str = ""
    #: The names of the span's own attributes that were not decoded (never their values).
    dropped: tuple[str, ...] = ()
    #: Span events (where older instrumentations put message content), never decoded.
    events: int = 0


def decode_protobuf(body: bytes, wanted: Wanted) -> list[SpanRecord]:
    """The spans of a protobuf ``ExportTraceServiceRequest``."""
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    try:
        request = ExportTraceServiceRequest.FromString(body)
    except DecodeError:
        raise ContractViolation(
            "body is not an OTLP ExportTraceServiceRequest (protobuf)"
        ) from None
    spans: list[SpanRecord] = []
    for resource_spans in request.resource_spans:
        resource = _proto_attributes(resource_spans.resource.attributes, wanted)
        for scope_spans in resource_spans.scope_spans:
            scope_name, scope_version = scope_spans.scope.name, scope_spans.scope.version
            for span in scope_spans.spans:
                attributes = dict(resource)
                dropped: list[str] = []
                attributes.update(_proto_attributes(span.attributes, wanted, dropped))
                spans.append(
                    SpanRecord(
                        span.trace_id.hex(),
                        span.span_id.hex(),
                        span.name,
                        span.start_time_unix_nano,
                        span.end_time_unix_nano,
                        span.status.code,
                        attributes,
                        scope_name,
                        scope_version,
                        tuple(dropped),
                        len(span.events),
                    )
                )
    return spans


def _proto_attributes(
    attributes: Any, wanted: Wanted, dropped: list[str] | None = None
) -> dict[str, Any]:
    keys, prefixes = wanted.keys, wanted.prefixes  # inlined: this loop is the hot path
    out: dict[str, Any] = {}
    for kv in attributes:
        key = kv.key
        if key in keys or key.startswith(prefixes):
            out[key] = _proto_value(kv.value)
        elif dropped is not None:
            dropped.append(key)
    return out


def _proto_value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_proto_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _proto_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind)


def decode_json(body: bytes, wanted: Wanted) -> list[SpanRecord]:
    """The spans of an OTLP/JSON export request."""
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ContractViolation("body is not JSON") from None
    spans: list[SpanRecord] = []
    for path, resource_spans in _items(request, "resourceSpans", "body"):
        resource = _json_attributes(
            _object(resource_spans.get("resource", {}), f"{path}.resource"), path, wanted
        )
        scopes = "scopeSpans" if "scopeSpans" in resource_spans else "instrumentationLibrarySpans"
        for scope_path, scope_spans in _items(resource_spans, scopes, path):
            scope = scope_spans.get("scope", scope_spans.get("instrumentationLibrary")) or {}
            scope = _object(scope, f"{scope_path}.scope")
            scope_name = str(scope.get("name") or "")[:256]
            scope_version = str(scope.get("version") or "")[:64]
            for span_path, span in _items(scope_spans, "spans", scope_path):
                attributes = dict(resource)
                dropped: list[str] = []
                attributes.update(_json_attributes(span, span_path, wanted, dropped))
                events = span.get("events") or []
                status = _object(span.get("status") or {}, f"{span_path}.status")
                spans.append(
                    SpanRecord(
                        _hex_id(span.get("traceId"), 16, f"{span_path}.traceId"),
                        _hex_id(span.get("spanId"), 8, f"{span_path}.spanId"),
                        str(span.get("name", ""))[:256],
                        _int64(span.get("startTimeUnixNano", 0), f"{span_path}.startTimeUnixNano"),
                        _int64(span.get("endTimeUnixNano", 0), f"{span_path}.endTimeUnixNano"),
                        _status_code(status.get("code", 0), f"{span_path}.status.code"),
                        attributes,
                        scope_name,
                        scope_version,
                        tuple(dropped),
                        len(events) if isinstance(events, list) else 0,
                    )
                )
    return spans


def count_log_records(body: bytes, protobuf: bool) -> dict[tuple[str, str], int]:
    """How many log records an OTLP ``ExportLogsServiceRequest`` holds (protobuf or JSON), by
    instrumentation scope ``(name, version)``.

    Only the structure is read: no record's body or attributes are turned into values."""
    records: dict[tuple[str, str], int] = {}
    if protobuf:
        from google.protobuf.message import DecodeError
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
            ExportLogsServiceRequest,
        )

        try:
            request = ExportLogsServiceRequest.FromString(body)
        except DecodeError:
            raise ContractViolation(
                "body is not an OTLP ExportLogsServiceRequest (protobuf)"
            ) from None
        for resource_logs in request.resource_logs:
            for scope_logs in resource_logs.scope_logs:
                scope = (scope_logs.scope.name[:256], scope_logs.scope.version[:64])
                records[scope] = records.get(scope, 0) + len(scope_logs.log_records)
        return records
    try:
        request_json = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ContractViolation("body is not JSON") from None
    for path, resource_logs in _items(request_json, "resourceLogs", "body"):
        for scope_path, scope_logs in _items(resource_logs, "scopeLogs", path):
            scope_json = _object(scope_logs.get("scope") or {}, f"{scope_path}.scope")
            scope = (
                str(scope_json.get("name") or "")[:256],
                str(scope_json.get("version") or "")[:64],
            )
            count = sum(1 for _ in _items(scope_logs, "logRecords", scope_path))
            records[scope] = records.get(scope, 0) + count
    return records


def _object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ContractViolation(f"{path}: expected an object", path)
    return value


def _items(parent: Any, key: str, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    parent = _object(parent, path)
    values = parent.get(key)
    if values is None:
        values = []
    if not isinstance(values, list):
        raise ContractViolation(f"{path}.{key}: expected a list", key)
    for index, value in enumerate(values):
        item_path = f"{path}.{key}[{index}]"
        yield item_path, _object(value, item_path)


def _json_attributes(
    holder: Mapping[str, Any], path: str, wanted: Wanted, dropped: list[str] | None = None
) -> dict[str, Any]:
    attributes = holder.get("attributes")
    if attributes is None:
        attributes = []
    if not isinstance(attributes, list):
        raise ContractViolation(f"{path}.attributes: expected a list", "attributes")
    out: dict[str, Any] = {}
    for index, kv in enumerate(attributes):
        if not isinstance(kv, dict) or not isinstance(kv.get("key"), str):
            raise ContractViolation(f"{path}.attributes[{index}]: expected {{key, value}}")
        if wanted(kv["key"]):
            out[kv["key"]] = _json_value(kv.get("value"), f"{path}.attributes[{index}].value")
        elif dropped is not None:
            dropped.append(kv["key"])
    return out


def _json_value(value: Any, path: str) -> Any:
    """An OTLP/JSON AnyValue (every shape the spec allows, int64 as string included)."""
    if value is None or value == {}:
        return None
    if not isinstance(value, dict) or len(value) != 1:
        raise ContractViolation(f"{path}: expected an AnyValue with one field")
    ((kind, inner),) = value.items()
    if kind == "stringValue":
        return str(inner)
    if kind == "boolValue":
        return bool(inner)
    if kind == "intValue":
        return _int64(inner, path)
    if kind == "doubleValue":
        if isinstance(inner, str):  # "NaN", "Infinity", "-Infinity"
            try:
                return float(inner)
            except ValueError:
                raise ContractViolation(
                    f"{path}: doubleValue is a string that is not a number"
                ) from None
        if isinstance(inner, bool) or not isinstance(inner, int | float):
            raise ContractViolation(f"{path}: doubleValue is not a number")
        return float(inner)
    if kind == "bytesValue":
        try:
            return base64.b64decode(str(inner), validate=True)
        except ValueError:
            raise ContractViolation(f"{path}: bytesValue is not base64") from None
    if kind == "arrayValue":
        values = _object(inner, path).get("values") or []
        return [_json_value(v, f"{path}.values[{i}]") for i, v in enumerate(values)]
    if kind == "kvlistValue":
        values = _object(inner, path).get("values") or []
        return {
            str(kv.get("key")): _json_value(kv.get("value"), f"{path}.values[{i}]")
            for i, kv in enumerate(values)
            if isinstance(kv, dict)
        }
    raise ContractViolation(f"{path}: unknown AnyValue field {kind[:40]!r}")


def _int64(value: Any, path: str) -> int:
    """An int64 written as a JSON number or a string."""
    if isinstance(value, bool):
        raise ContractViolation(f"{path}: expected an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    raise ContractViolation(f"{path}: expected an integer (a number or a string of digits)")


def _status_code(value: Any, path: str) -> int:
    names = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
    if isinstance(value, str) and value in names:
        return names[value]
    return _int64(value, path)


def _hex_id(value: Any, size: int, path: str) -> str:
    if not isinstance(value, str) or len(value) != size * 2:
        raise ContractViolation(f"{path}: expected {size * 2} hex digits")
    try:
        bytes.fromhex(value)
    except ValueError:
        raise ContractViolation(f"{path}: expected {size * 2} hex digits") from None
    return value.lower()
