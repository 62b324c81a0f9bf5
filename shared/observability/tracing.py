"""OpenTelemetry, set up once and lazily.

* ``OTEL_EXPORTER_OTLP_ENDPOINT`` set: spans go to that OTLP/gRPC endpoint (the exporter reads
  ``OTEL_EXPORTER_OTLP_HEADERS`` itself).
* ``staging``/``prod`` without an OTLP endpoint: spans go to Cloud Trace, through Google's own
  OTLP/gRPC endpoint (so the exporter is the same one: gRPC is already loaded for Pub/Sub).
* Otherwise (dev, tests) no exporter is installed unless ``TELEMETRY_TRACING=on``; the API then
  hands out no-op spans that cost next to nothing.

The trace context travels in Pub/Sub message attributes (W3C ``traceparent``), so one trace runs
from ingest through the sink. That format is fixed here, not read from ``OTEL_PROPAGATORS``: both
ends must agree on it, and the API's configurable propagator scans the installed packages' entry
points on first use, on every cold start.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, MutableMapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shared.settings import Settings, get_settings

#: Google's OTLP endpoint for Cloud Trace (the Telemetry API; the service account needs
#: ``roles/telemetry.tracesWriter``).
CLOUD_TRACE_OTLP_ENDPOINT = "telemetry.googleapis.com:443"
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
_lock = threading.Lock()
_provider: Any = None
_TRACE_CONTEXT = TraceContextTextMapPropagator()


def setup_tracing(settings: Settings | None = None, processor: Any = None) -> bool:
    """Install the tracer provider for this process once; True when spans are exported.

    ``processor`` replaces the batching processor around the chosen exporter (tests pass a
    ``SimpleSpanProcessor`` over an in-memory exporter, to read spans as soon as they end).
    """
    global _provider
    with _lock:
        if _provider is not None:
            return True
        settings = settings or get_settings()
        if processor is None:
            exporter = _choose_exporter(settings)
            if exporter is None:
                return False
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            processor = BatchSpanProcessor(exporter)
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider

        provider = TracerProvider(
            resource=Resource.create(
                {
                    "service.name": "telemetry-pipeline",
                    "deployment.environment": settings.telemetry_env,
                    # Google's OTLP endpoint files the spans under this project.
                    "gcp.project_id": settings.google_cloud_project,
                }
            )
        )
        provider.add_span_processor(processor)
        trace.set_tracer_provider(provider)
        _provider = provider
        return True


def _choose_exporter(settings: Settings) -> Any:
    if settings.telemetry_tracing == "off":
        return None
    if settings.otel_exporter_otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if settings.is_production:
        return cloud_trace_exporter()
    if settings.telemetry_tracing == "on":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    return None


def cloud_trace_exporter() -> Any:
    """Spans to Cloud Trace through Google's OTLP endpoint (the Telemetry API), with the
    service account's Application Default Credentials on every call."""
    import google.auth
    import google.auth.transport.grpc
    import google.auth.transport.urllib3
    import grpc
    import urllib3
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    credentials, _ = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
    request = google.auth.transport.urllib3.Request(urllib3.PoolManager())  # type: ignore[no-untyped-call]
    plugin = google.auth.transport.grpc.AuthMetadataPlugin(credentials, request)  # type: ignore[no-untyped-call]
    channel_credentials = grpc.composite_channel_credentials(
        grpc.ssl_channel_credentials(), grpc.metadata_call_credentials(plugin)
    )
    return OTLPSpanExporter(endpoint=CLOUD_TRACE_OTLP_ENDPOINT, credentials=channel_credentials)


def get_tracer(name: str) -> trace.Tracer:
    """A tracer; a no-op one until :func:`setup_tracing` installs a provider."""
    return trace.get_tracer(name)


def tracer_provider() -> Any:
    """The installed tracer provider, or None while spans are not exported."""
    return _provider


def inject_trace_attributes(attributes: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """Add the current trace context (``traceparent``) to Pub/Sub message attributes."""
    _TRACE_CONTEXT.inject(attributes)
    return attributes


def extract_trace_context(attributes: Mapping[str, str] | None) -> otel_context.Context:
    """The trace context carried by Pub/Sub message attributes (empty when there is none)."""
    return _TRACE_CONTEXT.extract(dict(attributes or {}))


def shutdown_tracing() -> None:
    """Flush and forget the provider (process exit, tests)."""
    global _provider
    with _lock:
        if _provider is not None:
            _provider.shutdown()
        _provider = None
