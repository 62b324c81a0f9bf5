"""OpenTelemetry, set up once and lazily.

* ``OTEL_EXPORTER_OTLP_ENDPOINT`` set: spans go to that OTLP/HTTP endpoint (the exporter reads
  ``OTEL_EXPORTER_OTLP_HEADERS`` itself).
* ``staging``/``prod`` without an OTLP endpoint: spans go to Cloud Trace.
* Otherwise (dev, tests) no exporter is installed unless ``TELEMETRY_TRACING=on``; the API then
  hands out no-op spans that cost next to nothing.

The trace context travels in Pub/Sub message attributes (W3C ``traceparent``), so one trace runs
from ingest through the sink.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, MutableMapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace

from shared.settings import Settings, get_settings

_lock = threading.Lock()
_provider: Any = None


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
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if settings.is_production or settings.telemetry_tracing == "on":
        if settings.is_production:
            from opentelemetry.exporter.cloud_trace import CloudTraceSpanExporter

            return CloudTraceSpanExporter(  # type: ignore[no-untyped-call]
                project_id=settings.google_cloud_project
            )
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    return None


def get_tracer(name: str) -> trace.Tracer:
    """A tracer; a no-op one until :func:`setup_tracing` installs a provider."""
    return trace.get_tracer(name)


def instrument_engine(engine: Any) -> None:
    """Trace every statement of a SQLAlchemy engine (only when tracing is exported)."""
    if _provider is None:
        return
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    SQLAlchemyInstrumentor().instrument(engine=engine, tracer_provider=_provider)


def inject_trace_attributes(attributes: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """Add the current trace context (``traceparent``) to Pub/Sub message attributes."""
    propagate.inject(attributes)
    return attributes


def extract_trace_context(attributes: Mapping[str, str] | None) -> otel_context.Context:
    """The trace context carried by Pub/Sub message attributes (empty when there is none)."""
    return propagate.extract(dict(attributes or {}))


def shutdown_tracing() -> None:
    """Flush and forget the provider (process exit, tests)."""
    global _provider
    with _lock:
        if _provider is not None:
            _provider.shutdown()
        _provider = None
