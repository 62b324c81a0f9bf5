"""An app whose OpenAI calls are traced by OpenLLMetry or OpenLIT, exporting OTLP to ingest.

Run as ``python instrumented_app.py traceloop|openlit`` with ``FAKE_LLM_URL``, ``OTLP_ENDPOINT``
(ingest's base URL) and ``OTLP_TOKEN``: three calls (plain, streamed, failing), then a flush.
Each library sets the process's global tracer provider, hence one process per library.
"""

from __future__ import annotations

import contextlib
import os
import sys

import openai


def init_library(library: str) -> None:
    """Set up OpenLLMetry (``traceloop``) or OpenLIT (``openlit``) to export to ingest."""
    endpoint, token = os.environ["OTLP_ENDPOINT"], os.environ["OTLP_TOKEN"]
    headers = {"Authorization": f"Bearer {token}"}
    if library == "traceloop":
        from traceloop.sdk import Traceloop

        Traceloop.init(
            app_name="otlp-test",
            api_endpoint=endpoint,
            headers=headers,
            disable_batch=True,
            telemetry_enabled=False,
        )
    else:
        import openlit

        openlit.init(
            otlp_endpoint=endpoint,
            otlp_headers=headers,
            disable_batch=True,
            disable_metrics=True,
            application_name="otlp-test",
        )


def main(library: str) -> None:
    init_library(library)
    client = openai.OpenAI(base_url=os.environ["FAKE_LLM_URL"], api_key="fake", max_retries=0)
    messages = [{"role": "user", "content": "SECRET-PROMPT-CANARY"}]
    client.chat.completions.create(model="gpt-4o", messages=messages)  # type: ignore[arg-type]
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=messages,  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
    )
    for _ in stream:
        pass
    with contextlib.suppress(openai.InternalServerError):
        client.chat.completions.create(model="fail-model", messages=messages)  # type: ignore[arg-type]
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    provider.force_flush()  # type: ignore[attr-defined]
    print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
