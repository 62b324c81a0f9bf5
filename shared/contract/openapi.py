"""The ingest API's OpenAPI 3.1 document, generated from the wire format and the registry.

``POST /v1/events`` takes the envelope of ``envelope.schema.json`` whose events are each one of
the registry's client events (frame of ``event.schema.json``, ``name`` and ``version`` fixed,
``props`` its registry schema); the answers are the ones ingest gives. The document is served at
``GET /v1/openapi.json`` and written to ``docs/openapi.json`` (a drift check runs in
``make test``), and schemathesis fuzzes the live function against it. ``POST /v1/traces``
follows OTLP/HTTP's own specification and is described, not restated.
"""

from __future__ import annotations

import copy
from typing import Any

from shared.contract.registry.keywords import SERVER_ONLY_CATEGORIES
from shared.contract.registry.loader import (
    ENVELOPE_SCHEMA_PATH,
    EVENT_SCHEMA_PATH,
    Registry,
    load_json_schema,
)
from shared.settings import Settings

OPENAPI_PATH = "/v1/openapi.json"
#: The default of ``TELEMETRY_MAX_EVENTS`` (what docs/openapi.json states).
DEFAULT_MAX_EVENTS: int = Settings().telemetry_max_events
_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string", "description": "What is wrong, in words."}},
}


def _event_schema(frame: dict[str, Any], name: str, version: int, props: dict[str, Any]) -> Any:
    schema = copy.deepcopy(frame)
    schema.pop("$schema", None)
    schema.pop("$id", None)
    schema["title"] = f"{name} v{version}"
    schema["required"] = [r for r in schema["required"] if r not in ("session_id", "version")]
    schema["properties"]["name"] = {"const": name}
    schema["properties"]["version"] = {"const": version, "default": 1}
    schema["properties"]["props"] = copy.deepcopy(props)
    return schema


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if headers:
        out["headers"] = headers
    return out


def openapi_document(
    registry: Registry, max_events: int = DEFAULT_MAX_EVENTS, version: str = "1"
) -> dict[str, Any]:
    """The whole document (``max_events``: the deployment's events-per-request limit)."""
    frame = load_json_schema(EVENT_SCHEMA_PATH)
    envelope = load_json_schema(ENVELOPE_SCHEMA_PATH)
    envelope.pop("$schema", None)
    envelope.pop("$id", None)
    schemas: dict[str, Any] = {"Error": _ERROR}
    refs = []
    for spec in registry:
        if spec.category in SERVER_ONLY_CATEGORIES:
            continue
        key = f"{spec.name.replace('.', '_')}_v{spec.version}"
        schemas[key] = _event_schema(frame, spec.name, spec.version, spec.props_schema)
        schemas[key]["description"] = spec.description
        refs.append({"$ref": f"#/components/schemas/{key}"})
    envelope = copy.deepcopy(envelope)
    envelope["properties"]["events"]["items"] = {"oneOf": refs}
    envelope["properties"]["events"]["maxItems"] = max_events
    schemas["Envelope"] = envelope
    schemas["Accepted"] = {
        "type": "object",
        "required": ["accepted", "sampled_out", "rejected"],
        "properties": {
            "accepted": {"type": "integer", "minimum": 0},
            "sampled_out": {"type": "integer", "minimum": 0},
            "rejected": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["index", "event_id", "reason"],
                    "properties": {
                        "index": {"type": "integer", "minimum": 0},
                        "event_id": {"type": ["string", "null"]},
                        "reason": {"type": "string"},
                    },
                },
            },
        },
    }
    body = {"$ref": "#/components/schemas/Envelope"}
    retry = {"Retry-After": {"schema": {"type": "string"}, "description": "Seconds to wait."}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Telemetry ingest",
            "version": version,
            "description": (
                "Beacons from web front ends (wire format v1). Each event is accepted, sampled "
                "out or rejected with its reason; a bad envelope is refused whole. Events a "
                "client may not send (the pipeline's own) are refused. POST /v1/traces takes "
                "OTLP/HTTP trace exports (protobuf or JSON, a bearer token) as OpenTelemetry's "
                "specification defines them: https://opentelemetry.io/docs/specs/otlp/"
            ),
        },
        "paths": {
            "/v1/events": {
                "post": {
                    "operationId": "sendBeacon",
                    "summary": "Send a batch of events",
                    "requestBody": {
                        "required": True,
                        "description": (
                            "The envelope as JSON. The same JSON is also taken as "
                            "text/plain;charset=UTF-8 (what sendBeacon sends for a string, a "
                            "CORS-simple type), and either may be Content-Encoding: gzip."
                        ),
                        "content": {"application/json": {"schema": body}},
                    },
                    "responses": {
                        "202": {
                            "description": "Every event accepted, sampled out or rejected",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Accepted"}
                                }
                            },
                        },
                        "400": _error("The body is not a valid envelope"),
                        "403": _error("The Origin is not allowed"),
                        "413": _error("The body or its number of events is over the limit"),
                        "415": _error("Not JSON or text/plain, or an unknown Content-Encoding"),
                        "429": _error(
                            "Over a rate limit (this session, this address, this site or the "
                            "instance): nothing accepted; send again after Retry-After",
                            retry,
                        ),
                        "503": _error("Pub/Sub unavailable: nothing accepted, retry", retry),
                    },
                },
                "options": {
                    "operationId": "preflight",
                    "summary": "CORS preflight",
                    "responses": {
                        "204": {"description": "Allowed methods and headers"},
                        "403": _error("The Origin is not allowed"),
                    },
                },
            },
            OPENAPI_PATH: {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "responses": {
                        "200": {
                            "description": "The OpenAPI document",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
        "components": {"schemas": schemas},
    }
