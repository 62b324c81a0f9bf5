from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from datetime import datetime

import pytest

from shared.observability.log import (
    configure_logging,
    current_request_id,
    parse_trace_header,
    request_context,
    run_with_context,
)


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    configure_logging("DEBUG", stream=buffer)
    yield buffer
    configure_logging("WARNING")


def lines(buffer: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


def test_log_lines_are_cloud_logging_json(stream: io.StringIO) -> None:
    logging.getLogger("some.module").warning("disk %s", "low", extra={"free_mb": 12})
    logging.getLogger("other").info("batch stored", extra={"rows": 50})
    first, second = lines(stream)
    assert first["severity"] == "WARNING"
    assert first["message"] == "disk low"
    assert first["free_mb"] == 12
    assert second["severity"] == "INFO"
    assert second["message"] == "batch stored"
    assert second["rows"] == 50
    assert datetime.fromisoformat(str(second["time"])).tzinfo is not None
    assert set(second) == {"severity", "message", "time", "rows"}


def test_trace_and_request_id_are_attached_in_a_request(stream: io.StringIO) -> None:
    header = "0af7651916cd43dd8448eb211c80319c/2205310701640571284;o=1"
    with request_context(project="acme", cloud_trace_context=header) as rid:
        logging.getLogger("x").info("inside")
        assert current_request_id() == rid
    logging.getLogger("x").info("outside")
    inside, outside = lines(stream)
    assert (
        inside["logging.googleapis.com/trace"]
        == "projects/acme/traces/0af7651916cd43dd8448eb211c80319c"
    )
    assert inside["logging.googleapis.com/spanId"] == "1e9ad6661ea75994"
    assert inside["logging.googleapis.com/trace_sampled"] is True
    assert inside["request_id"] == rid
    assert "request_id" not in outside
    assert "logging.googleapis.com/trace" not in outside


def test_identifiers_and_props_are_redacted(stream: io.StringIO) -> None:
    logging.getLogger("x").info(
        "event rejected",
        extra={"user_id": "u-42", "props": {"panel": "bias"}, "reason_field": "props"},
    )
    logging.getLogger("y").info("stored", extra={"session_id": "s-1", "conversation_id": "c-9"})
    text = stream.getvalue()
    assert "u-42" not in text and "bias" not in text and "s-1" not in text and "c-9" not in text
    first, second = lines(stream)
    assert first["user_id"] == "[redacted]" and first["props"] == "[redacted]"
    assert second["session_id"] == "[redacted]"


def test_exceptions_are_rendered_as_error_lines(stream: io.StringIO) -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("x").exception("failed")
    (line,) = lines(stream)
    assert line["severity"] == "ERROR"
    assert "ValueError: boom" in str(line["exception"])


def test_request_id_follows_work_into_threads(stream: io.StringIO) -> None:
    seen: list[str | None] = []
    with request_context(request_id="req-1"):
        worker = threading.Thread(
            target=run_with_context(lambda: seen.append(current_request_id()))
        )
        plain = threading.Thread(target=lambda: seen.append(current_request_id()))
        worker.start(), plain.start()
        worker.join(), plain.join()
    assert sorted(seen, key=str) == sorted(["req-1", None], key=str)


@pytest.mark.parametrize(
    ("cloud", "parent", "expected"),
    [
        (
            None,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", True),
        ),
        (
            None,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
            ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", False),
        ),
        (
            "4BF92F3577B34DA6A3CE929D0E0E4736",
            None,
            ("4bf92f3577b34da6a3ce929d0e0e4736", None, None),
        ),
        (
            "4bf92f3577b34da6a3ce929d0e0e4736/1;o=0",
            None,
            ("4bf92f3577b34da6a3ce929d0e0e4736", "0000000000000001", False),
        ),
        (None, "garbage", None),
        ("nonsense", None, None),
        (None, "00-00000000000000000000000000000000-00f067aa0ba902b7-01", None),
    ],
)
def test_parse_trace_header(cloud: str | None, parent: str | None, expected: object) -> None:
    assert parse_trace_header(cloud, parent) == expected


def test_traceparent_wins_over_cloud_trace_context() -> None:
    parsed = parse_trace_header(
        "11111111111111111111111111111111/5;o=1",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    )
    assert parsed is not None and parsed[0] == "4bf92f3577b34da6a3ce929d0e0e4736"


def test_configure_twice_keeps_one_handler() -> None:
    configure_logging("INFO")
    configure_logging("INFO")
    ours = [h for h in logging.getLogger().handlers if getattr(h, "_telemetry", False)]
    assert len(ours) == 1
