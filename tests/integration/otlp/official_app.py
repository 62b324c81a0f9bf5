"""An app whose model calls are traced by a GenAI instrumentation, exporting OTLP/HTTP.

Run as ``python official_app.py <source>`` with ``FAKE_LLM_URL`` (the fake server's OpenAI
base URL), ``OTLP_ENDPOINT`` (ingest's base URL, or the capture server of
``capture_fixtures.py``) and ``OTLP_TOKEN``. The sources: the official instrumentations
``openai``, ``anthropic`` and ``google-genai``, and OpenLIT on the Anthropic SDK
(``openlit-anthropic``). Each provider's real SDK makes three calls against the fake server:
plain, streamed and failing. With ``CAPTURE_CONTENT=1`` an official instrumentation records
message content in its spans and sends the ``gen_ai.client.inference.operation.details`` log
event to ``OTLP_ENDPOINT``'s ``/v1/logs``, as an app with content capture turned on does.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

PROMPT = "SECRET-PROMPT-CANARY"


def openai_calls(base_url: str, instrument: bool = True) -> None:
    import openai
    from opentelemetry.instrumentation.genai.openai import OpenAIInstrumentor

    if instrument:
        OpenAIInstrumentor().instrument()
    client = openai.OpenAI(base_url=base_url, api_key="fake", max_retries=0)
    messages: Any = [{"role": "user", "content": PROMPT}]
    client.chat.completions.create(model="o4-mini", messages=messages)
    stream = client.chat.completions.create(
        model="o4-mini", messages=messages, stream=True, stream_options={"include_usage": True}
    )
    for _ in stream:
        pass
    with contextlib.suppress(openai.InternalServerError):
        client.chat.completions.create(model="fail-model", messages=messages)


def anthropic_calls(base_url: str, instrument: bool = True) -> None:
    import anthropic
    from opentelemetry.instrumentation.genai.anthropic import AnthropicInstrumentor

    if instrument:
        AnthropicInstrumentor().instrument()
    client = anthropic.Anthropic(
        base_url=base_url.removesuffix("/v1"), api_key="fake", max_retries=0
    )
    messages: Any = [{"role": "user", "content": PROMPT}]
    client.messages.create(model="claude-sonnet-4-5", max_tokens=256, messages=messages)
    with client.messages.stream(
        model="claude-sonnet-4-5", max_tokens=256, messages=messages
    ) as stream:
        for _ in stream.text_stream:
            pass
    with contextlib.suppress(anthropic.InternalServerError):
        client.messages.create(model="fail-model", max_tokens=256, messages=messages)


def google_genai_calls(base_url: str, instrument: bool = True) -> None:
    from google import genai
    from google.genai import errors, types
    from opentelemetry.instrumentation.google_genai import GoogleGenAiSdkInstrumentor

    if instrument:
        GoogleGenAiSdkInstrumentor().instrument()
    client = genai.Client(
        api_key="fake",
        http_options=types.HttpOptions(
            base_url=base_url.removesuffix("/v1"),
            retry_options=types.HttpRetryOptions(attempts=1),
        ),
    )
    client.models.generate_content(model="gemini-2.5-flash", contents=PROMPT)
    for _ in client.models.generate_content_stream(model="gemini-2.5-flash", contents=PROMPT):
        pass
    with contextlib.suppress(errors.APIError):
        client.models.generate_content(model="fail-model", contents=PROMPT)


CALLS: dict[str, Callable[..., None]] = {
    "openai": openai_calls,
    "anthropic": anthropic_calls,
    "google-genai": google_genai_calls,
}


def send_content_events(endpoint: str, headers: dict[str, str]) -> None:
    """Content in the spans and in the details log event, exported to ``/v1/logs``."""
    from opentelemetry import _logs
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor

    os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "SPAN_AND_EVENT"
    os.environ["OTEL_INSTRUMENTATION_GENAI_EMIT_EVENT"] = "true"
    logs = LoggerProvider()
    exporter = OTLPLogExporter(endpoint=f"{endpoint}/v1/logs", headers=headers)
    logs.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    _logs.set_logger_provider(logs)


def main(source: str) -> None:
    endpoint, token = os.environ["OTLP_ENDPOINT"], os.environ["OTLP_TOKEN"]
    headers = {"Authorization": f"Bearer {token}"}
    if source.startswith("openlit-"):
        from instrumented_app import init_library  # this script's sibling

        init_library("openlit")
        CALLS[source.removeprefix("openlit-")](os.environ["FAKE_LLM_URL"], instrument=False)
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider = TracerProvider()
        exporter = OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces", headers=headers)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        if os.environ.get("CAPTURE_CONTENT") == "1":
            send_content_events(endpoint, headers)
        CALLS[source](os.environ["FAKE_LLM_URL"])
        if os.environ.get("CAPTURE_CONTENT") == "1":
            from opentelemetry import _logs

            _logs.get_logger_provider().force_flush()  # type: ignore[attr-defined]
    provider_now: Any = trace.get_tracer_provider()
    provider_now.force_flush()
    print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
