"""Typed errors of the pipeline.

Every error derives from :class:`TelemetryError`, carries its context as attributes, and says
whether a retry can help (:attr:`TelemetryError.transient`) and how an HTTP function answers it
(:attr:`~TelemetryError.http_status`, :attr:`~TelemetryError.retry_after_s`). The boundary that
catches an error (an HTTP handler, the sink, the CLI) decides from those alone whether to answer
"try again" or to give up and report (``shared.http.failure_answer`` is the one mapping every
function uses), so no caller needs to know every concrete class.
"""

from __future__ import annotations

from typing import Any


class TelemetryError(Exception):
    """Base of every error raised by the pipeline's own code."""

    transient: bool = False
    #: The status an HTTP function answers with, and the ``Retry-After`` it sends (seconds).
    http_status: int = 500
    retry_after_s: int | None = None

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context: dict[str, Any] = context

    def __str__(self) -> str:
        return self.message


class TransientError(TelemetryError):
    """A retry may succeed: a service was unreachable, busy, or timed out."""

    transient = True


class TerminalError(TelemetryError):
    """A retry cannot succeed: the input or the configuration is wrong."""

    transient = False


class AlreadyRunning(TransientError):
    """The same work is running elsewhere right now (a table's snapshot, an erasure): a later
    call succeeds, so it is 409 with ``Retry-After``, not a failure."""

    http_status = 409
    retry_after_s = 60


class ConfigurationError(TerminalError):
    """Settings are missing or invalid; names every variable at fault."""

    def __init__(self, message: str, variables: list[str] | None = None) -> None:
        super().__init__(message, variables=variables or [])
        self.variables: list[str] = variables or []


class RegistryError(TerminalError):
    """The event registry file is malformed or breaks a registry rule."""

    def __init__(self, message: str, path: str, line: int | None = None) -> None:
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {message}", path=path, line=line)
        self.path = path
        self.line = line


class ContractViolation(TerminalError):
    """An event or envelope does not match the contract (schema, registry, time window)."""

    http_status = 400

    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(reason, field=field)
        self.reason = reason
        self.field = field


class UnknownEvent(ContractViolation):
    """The event's name and version are not in the registry."""


class ServiceUnavailable(TransientError):
    """A backing service (database, Pub/Sub, GCS) could not be reached in time."""

    http_status = 503
    retry_after_s = 60

    def __init__(self, message: str, service: str) -> None:
        super().__init__(message, service=service)
        self.service = service


class LocalFileError(TerminalError):
    """A file on this machine could not be written or read (permission, disk full, a read-only
    folder): no remote service is at fault, and retrying the same call on the same machine
    cannot help. Names the path and the operating system's cause."""

    def __init__(self, path: str, cause: str) -> None:
        super().__init__(
            f"cannot use the local file {path}: {cause} "
            "(TMPDIR must name a folder this process can write, with free space)",
            path=path,
            cause=cause,
        )
        self.path = path
        self.cause = cause


def local_file_error(error: BaseException) -> LocalFileError | None:
    """A :class:`LocalFileError` when ``error`` is an operating-system error about a named local
    file (a socket error names no file); else None."""
    if isinstance(error, OSError) and error.filename is not None:
        cause = error.strerror or type(error).__name__
        return LocalFileError(str(error.filename), cause)
    return None


def describe_decode_error(exc: Exception, where: str) -> tuple[str, str]:
    """``(reason, field)`` of a msgspec decode error (its message ends with the ``$`` path of
    the field), the path rooted at ``where``: the one wording of "this field is wrong" for
    every typed decoder (stored events, messages, function bodies)."""
    message, _, path = str(exc).partition(" - at `")
    field = where + path.rstrip("`").removeprefix("$") if path else where
    return f"{field}: {message}", field


def retry_after_seconds(header: str | None) -> float | None:
    """The seconds a ``Retry-After`` header asks to wait (delta-seconds; an HTTP date or a
    malformed value is None, and the caller's own backoff applies)."""
    try:
        seconds = float(header) if header else None
    except ValueError:
        return None
    return max(0.0, seconds) if seconds is not None else None
