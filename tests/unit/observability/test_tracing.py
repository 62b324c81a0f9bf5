from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.observability import tracing
from shared.settings import load_settings
from shared.storage.hot.engine import instrument_engine


def test_no_exporter_in_tests_unless_asked(monkeypatch) -> None:
    monkeypatch.setenv("TELEMETRY_TRACING", "off")
    assert tracing._choose_exporter(load_settings()) is None
    monkeypatch.setenv("TELEMETRY_TRACING", "auto")
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    assert tracing._choose_exporter(load_settings()) is None


def test_spans_reach_the_otlp_grpc_collector_the_endpoint_names(monkeypatch) -> None:
    """A real gRPC server in the collector's place receives the span, with the headers
    ``OTEL_EXPORTER_OTLP_HEADERS`` names."""
    from concurrent import futures

    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
    from opentelemetry.sdk.trace import TracerProvider

    received: list[tuple[list[str], dict[str, str]]] = []

    class Collector(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request, context):
            names = [
                span.name
                for resource in request.resource_spans
                for scope in resource.scope_spans
                for span in scope.spans
            ]
            received.append((names, dict(context.invocation_metadata())))
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Collector(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        monkeypatch.setenv("TELEMETRY_TRACING", "auto")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=abc")
        exporter = tracing._choose_exporter(load_settings())
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        with provider.get_tracer("test").start_as_current_span("ingest.publish"):
            pass
        provider.shutdown()
    finally:
        server.stop(None)
    assert [names for names, _ in received] == [["ingest.publish"]]
    assert received[0][1]["x-api-key"] == "abc"


def test_console_exporter_when_forced_on_in_dev(monkeypatch) -> None:
    monkeypatch.setenv("TELEMETRY_TRACING", "on")
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    assert type(tracing._choose_exporter(load_settings())).__name__ == "ConsoleSpanExporter"


def test_trace_context_round_trips_through_pubsub_attributes() -> None:
    exporter = InMemorySpanExporter()
    tracing.setup_tracing(load_settings(), processor=SimpleSpanProcessor(exporter))
    assert tracing.setup_tracing() is True  # second call is a no-op
    tracer = tracing.get_tracer("test")
    with tracer.start_as_current_span("ingest") as span:
        attributes = tracing.inject_trace_attributes({"version": "1"})
        trace_id = span.get_span_context().trace_id
    assert attributes["traceparent"].split("-")[1] == format(trace_id, "032x")
    ctx = tracing.extract_trace_context(attributes)
    with tracer.start_as_current_span("sink", context=ctx) as child:
        assert child.get_span_context().trace_id == trace_id
    names = [s.name for s in exporter.get_finished_spans()]
    assert names == ["ingest", "sink"]
    assert trace.get_current_span().get_span_context().is_valid is False
    assert tracing.extract_trace_context(None) is not None


def test_cloud_trace_in_production_through_googles_otlp_endpoint(monkeypatch) -> None:
    import google.auth
    from google.auth.credentials import AnonymousCredentials
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    asked: list[object] = []

    def default(scopes=None):
        asked.append(scopes)
        return AnonymousCredentials(), "acme-prod"

    monkeypatch.setattr(google.auth, "default", default)
    for key, value in {
        "TELEMETRY_ENV": "prod",
        "GOOGLE_CLOUD_PROJECT": "acme-prod",
        "TELEMETRY_BUCKET": "b",
        "TELEMETRY_PSEUDONYM_KEY": "k1:production-secret-long",
        "TELEMETRY_TRACING": "auto",
        "TELEMETRY_ALLOWED_ORIGINS": "https://app.acme.com",
        "DATABASE_URL": "postgresql+pg8000://x@h/d",
    }.items():
        monkeypatch.setenv(key, value)
    for name in (
        "PUBSUB_EMULATOR_HOST",
        "STORAGE_EMULATOR_HOST",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "TELEMETRY_ARCHIVE_KEK",
    ):
        monkeypatch.delenv(name, raising=False)
    exporter = tracing._choose_exporter(load_settings())
    assert isinstance(exporter, OTLPSpanExporter)
    assert exporter._endpoint == tracing.CLOUD_TRACE_OTLP_ENDPOINT
    assert exporter._credentials is not None and not exporter._insecure
    assert asked == [[tracing.CLOUD_PLATFORM_SCOPE]]
    exporter.shutdown()


def test_setup_without_exporter_installs_nothing_and_engine_is_left_alone(monkeypatch) -> None:
    from sqlalchemy import create_engine

    monkeypatch.setattr(tracing, "_provider", None)
    monkeypatch.setenv("TELEMETRY_TRACING", "off")
    assert tracing.setup_tracing(load_settings()) is False
    engine = create_engine("postgresql+pg8000://u@127.0.0.1:1/db")
    instrument_engine(engine)  # no provider: a no-op
    tracing.shutdown_tracing()


def test_engine_statements_become_spans_when_tracing(monkeypatch) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from sqlalchemy import create_engine, text

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "_provider", provider)
    engine = create_engine("sqlite://")
    instrument_engine(engine)
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    assert any("SELECT" in span.name for span in exporter.get_finished_spans())
    tracing.shutdown_tracing()
    assert tracing._provider is None
