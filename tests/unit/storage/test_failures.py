"""One classification of storage failures: transient, refused, or a bug kept as it is."""

from __future__ import annotations

import pg8000.dbapi
import pytest
from google.api_core import exceptions as api
from google.auth import exceptions as auth_exceptions
from sqlalchemy import exc as sa_exc

from shared.errors import (
    AlreadyRunning,
    ConfigurationError,
    LocalFileError,
    ServiceUnavailable,
)
from shared.storage.failures import classify_failure
from shared.storage.hot.errors import DataRefused


def _pg(code: str) -> pg8000.dbapi.DatabaseError:
    return pg8000.dbapi.DatabaseError({"S": "ERROR", "C": code, "M": "boom"})


@pytest.mark.parametrize(
    ("error", "kind", "transient", "status"),
    [
        (api.ServiceUnavailable("down"), ServiceUnavailable, True, 503),
        (api.DeadlineExceeded("slow"), ServiceUnavailable, True, 503),
        (TimeoutError(), ServiceUnavailable, True, 503),
        (sa_exc.OperationalError("x", {}, _pg("08006")), ServiceUnavailable, True, 503),
        (sa_exc.DataError("x", {}, _pg("22P02")), DataRefused, False, 400),
        (PermissionError(13, "Permission denied", "/tmp/x"), LocalFileError, False, 500),
        (auth_exceptions.DefaultCredentialsError("none"), ConfigurationError, False, 500),
        (AlreadyRunning("busy"), AlreadyRunning, True, 409),
    ],
)
def test_failures_are_transient_or_refused_with_their_status(
    error: BaseException, kind: type, transient: bool, status: int
) -> None:
    failure = classify_failure(error)
    assert isinstance(failure, kind)
    assert failure.transient is transient and failure.http_status == status


@pytest.mark.parametrize(
    "error",
    [RuntimeError("a bug"), TypeError("ours"), api.NotFound("gone"), KeyError("x")],
)
def test_a_bug_or_a_refusal_of_ours_is_not_classified(error: BaseException) -> None:
    """None: the caller re-raises the original, with its own type and traceback."""
    assert classify_failure(error) is None


def test_no_credentials_says_what_to_set() -> None:
    failure = classify_failure(auth_exceptions.DefaultCredentialsError("none"))
    assert failure is not None and failure.message.startswith("no Google credentials")
    assert "GOOGLE_APPLICATION_CREDENTIALS" in failure.message
