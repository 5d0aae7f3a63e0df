"""The HTTP API against its own OpenAPI document, with schemathesis: requests made from
the schema (valid ones and invalid ones) to a real ``python -m fastws --insecure``, each
answer checked against the document: no server error, a documented status, JSON, and
the documented shape."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.hubprocess import API_KEY, HubProcess


@pytest.fixture(scope="module")
def hub() -> Iterator[HubProcess]:
    with HubProcess() as hub:
        yield hub


@pytest.fixture
def api_schema(hub: HubProcess) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"http://127.0.0.1:{hub.port}/api/v1/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_answers_as_its_document_says(case: schemathesis.Case) -> None:
    case.call_and_validate(
        headers={"Authorization": f"apikey {API_KEY}"},
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
