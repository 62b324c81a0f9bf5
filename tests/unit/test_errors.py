from __future__ import annotations

import pytest

from shared.errors import (
    ConfigurationError,
    ContractViolation,
    RegistryError,
    ServiceUnavailable,
    TelemetryError,
    TerminalError,
    TransientError,
    UnknownEvent,
)
from telemetry_cli.stack.errors import StackError


def test_every_error_says_whether_a_retry_can_help() -> None:
    assert ServiceUnavailable("db down", service="postgresql").transient
    for terminal in (
        ConfigurationError("bad", ["X"]),
        RegistryError("bad", "f.yaml", 3),
        ContractViolation("props.x: bad", "props.x"),
        UnknownEvent("name: 'x' is not in the event registry", "name"),
        StackError("port taken", "/tmp/log"),
    ):
        assert isinstance(terminal, TerminalError)
        assert isinstance(terminal, TelemetryError)
        assert not terminal.transient


def test_errors_carry_their_context() -> None:
    error = RegistryError("malformed YAML", "events.yaml", 12)
    assert str(error) == "events.yaml:12: malformed YAML"
    assert error.context == {"path": "events.yaml", "line": 12}
    unavailable = ServiceUnavailable("timeout", service="pubsub")
    assert isinstance(unavailable, TransientError)
    assert unavailable.context["service"] == "pubsub"
    assert str(StackError("emulator died", "/x/pubsub.log")) == "emulator died (see /x/pubsub.log)"
    assert ContractViolation("ts: too old", "ts").field == "ts"


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("5", 5.0),
        ("0.5", 0.5),
        ("-3", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("Wed, 21 Oct 2026 07:28:00 GMT", None),
    ],
)
def test_retry_after_is_delta_seconds_or_nothing(header: str | None, seconds: float | None) -> None:
    from shared.errors import retry_after_seconds

    assert retry_after_seconds(header) == seconds
