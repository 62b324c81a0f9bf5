"""Schemathesis fuzzes the live ingest function against the OpenAPI document it serves: no
server error, and every answer (status, content type, body) is one the document declares."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import negative_data_rejection

from shared.contract.openapi import openapi_document
from shared.contract.registry import default_registry

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
#: Examples per operation: enough to reach every event schema, bounded for the suite's time.
EXAMPLES = 60


@pytest.fixture(scope="module")
def ingest_api(
    services: Any, function_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    with function_server("ingest", services.env(), tmp_path_factory.mktemp("fuzz")) as url:
        yield schemathesis.openapi.from_url(f"{url}/v1/openapi.json")


schema = schemathesis.pytest.from_fixture("ingest_api")


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_ingest_answers_as_its_document_says(case: Any) -> None:
    # A batch holding an event its schema refuses is answered 202 with that event in
    # `rejected` (the others are kept: no valid data lost), not refused whole: the contract the
    # document states. So schemathesis' "schema-violating request rejected" check cannot apply;
    # every other check does (no 5xx, documented statuses, content types and bodies, valid
    # data accepted).
    response = case.call_and_validate(excluded_checks=[negative_data_rejection])
    assert response.status_code < 500


def test_the_served_document_is_the_generated_one_and_docs_hold_it(ingest_api: Any) -> None:
    generated = openapi_document(default_registry())
    assert ingest_api.raw_schema == generated
    assert json.loads((ROOT / "docs" / "openapi.json").read_text()) == generated
