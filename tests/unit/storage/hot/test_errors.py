"""Sorting driver errors: transient, data refused, or not ours to judge."""

from __future__ import annotations

import pg8000.dbapi
import pytest
from sqlalchemy import exc as sa_exc

from shared.errors import ContractViolation, ServiceUnavailable
from shared.storage.hot.errors import DataRefused, classify, sqlstate


def pg_error(code: str) -> pg8000.dbapi.DatabaseError:
    return pg8000.dbapi.DatabaseError({"S": "ERROR", "C": code, "M": "boom"})


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (sa_exc.OperationalError("x", {}, pg_error("08006")), True),
        (sa_exc.OperationalError("x", {}, pg_error("57P01")), True),
        (sa_exc.DBAPIError("x", {}, pg_error("40001")), True),
        (sa_exc.DBAPIError("x", {}, pg_error("40P01")), True),
        (sa_exc.DBAPIError("x", {}, pg_error("53300")), True),
        (sa_exc.ProgrammingError("x", {}, pg_error("42P01")), True),
        (sa_exc.DataError("x", {}, pg_error("22P02")), False),
        (sa_exc.IntegrityError("x", {}, pg_error("23502")), False),
        (sa_exc.TimeoutError("pool"), True),
        (ConnectionResetError(), True),
        (pg8000.dbapi.InterfaceError("network"), True),
        (sa_exc.OperationalError("x", {}, Exception("no code")), True),
        (sa_exc.ProgrammingError("x", {}, pg_error("3F000")), True),
    ],
)
def test_error_classification(error: BaseException, transient: bool) -> None:
    typed = classify(error)
    assert typed is not None and typed.transient is transient
    assert isinstance(typed, ServiceUnavailable if transient else DataRefused)


def test_type_error_in_own_code_is_not_called_postgresql_unavailable() -> None:
    """Regression: every exception used to become "PostgreSQL unavailable" (and be retried as
    such); a bug of ours must keep its type and traceback."""
    assert classify(TypeError("our bug")) is None
    assert classify(ValueError("surprise")) is None


@pytest.mark.parametrize("code", ["42601", "42703", "42501", "42883"])
def test_sqlstate_class_42_is_not_transient_except_schema_not_migrated(code: str) -> None:
    """Regression: all of class 42 (syntax error, undefined column, missing privilege) was
    retried as transient; only 42P01 and 3F000 (schema not migrated yet) are."""
    assert classify(sa_exc.ProgrammingError("x", {}, pg_error(code))) is None


def test_sqlstate_reads_wrapped_and_bare_errors() -> None:
    assert sqlstate(sa_exc.DataError("x", {}, pg_error("22001"))) == "22001"
    assert sqlstate(pg_error("40001")) == "40001"
    assert sqlstate(ValueError()) is None
    already = ContractViolation("x")
    assert classify(already) is already


def test_data_refused_is_a_contract_violation() -> None:
    refused = classify(sa_exc.DataError("x", {}, pg_error("22001")))
    assert isinstance(refused, ContractViolation) and "22001" in refused.message
