"""A bounded fuzz of the front door, run with the suite: Hypothesis bodies for every endpoint
of the table, multipart junk for the transcription form, and schemathesis against the
gateway's own OpenAPI document. No answer may be a 5xx, a hang or an error body that is not
OpenAI's. `python -m benchmarks.fuzz` runs the same cases by the ten thousand."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.core.result import Ok

from benchmarks.fuzz_cases import (
    BY_NAME,
    TARGETS,
    Request,
    html_statuses,
    problem,
    requests_for,
)
from tests.fuzz.conftest import KEY
from tests.support.gateway import GatewayServer

Operation = schemathesis.APIOperation[Any, Any, Any, Any]

EXAMPLES_PER_ENDPOINT = 30
SCHEMA_EXAMPLES = 10
FUZZ_OPTIONS: dict[str, Any] = {
    "deadline": None,
    "database": None,
    "phases": [Phase.explicit, Phase.generate],  # a failure is reported as found, unshrunk
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}
FUZZ_SETTINGS = settings(max_examples=EXAMPLES_PER_ENDPOINT, **FUZZ_OPTIONS)


def _send(http: httpx.Client, request: Request) -> httpx.Response:
    headers = {"Content-Type": request.content_type} if request.content_type else {}
    return http.request(request.method, request.path, content=request.body, headers=headers)


@pytest.mark.parametrize("endpoint", [target.name for target in TARGETS])
def test_fuzzed_requests_get_an_answer_in_openai_shape_and_never_a_5xx(
    fuzz_http: httpx.Client, endpoint: str
) -> None:
    @FUZZ_SETTINGS
    @given(requests_for(BY_NAME[endpoint]))
    def answered(request: Request) -> None:
        answer = _send(fuzz_http, request)  # a hang fails with httpx's timeout
        assert problem(answer.status_code, answer.content) is None, (
            request,
            answer.status_code,
            answer.content[:300],
        )

    answered()


@pytest.fixture(scope="session")
def gateway_operations(fuzz_gateway: GatewayServer) -> dict[str, Operation]:
    """The operations of the gateway's own /openapi.json, as schemathesis reads them."""
    schema = schemathesis.openapi.from_url(fuzz_gateway.root + "/openapi.json")
    operations: dict[str, Operation] = {}
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # the document itself must be valid
        operation = result.ok()
        operations[f"{operation.method.upper()} {operation.path}"] = operation
    return operations


def test_the_gateways_own_openapi_document_fuzzed_by_schemathesis(
    gateway_operations: dict[str, Operation], fuzz_gateway: GatewayServer
) -> None:
    assert "POST /v1/chat/completions" in gateway_operations
    for operation in gateway_operations.values():

        @settings(max_examples=SCHEMA_EXAMPLES, **FUZZ_OPTIONS)
        @given(operation.as_strategy())
        def answered(case: schemathesis.Case[Any]) -> None:
            answer = case.call(
                base_url=fuzz_gateway.root, headers={"Authorization": f"Bearer {KEY}"}, timeout=30
            )
            # A browser form's documented HTML pages are not OpenAI's error shape, nor meant to be.
            html_ok = html_statuses(case.operation.definition.raw.get("responses", {}))
            assert problem(answer.status_code, answer.content, html_ok) is None, (
                case.method,
                case.formatted_path,
                case.body,
                answer.status_code,
                answer.content[:300],
            )

        answered()
