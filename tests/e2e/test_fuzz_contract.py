"""The contract fuzzed by Schemathesis (a tool nobody here wrote): every operation in the OpenAPI
document the dev stack serves (``/api/openapi.yaml``) gets schema-valid and schema-invalid requests
with a valid bearer token for the dev agent, and every answer must be no server error, a documented
status code, a documented content type and headers, and a body the schema admits (so a problem's
``code`` is one of the catalogue's, the Problem schema's enum). Schemathesis also checks that a
request the schema forbids is refused (4xx: the schema is no looser than the server), that an
operation which declares security refuses the request without its token, and that a missing required
header is refused. (Its checks for a method the document does not list only run in Schemathesis' own
coverage phase, not in these generated cases: tests/e2e/test_contract.py sends every path each method
it does not document and expects the app's 405 with a matching ``Allow``.)

The fuzzer runs on the session's dev stack as an identity of its own ("Contract fuzzer": an agent
with the Broker.Caller role and an object id no other test uses), so what it leaves behind - held
requests, pending grants, journal records - belongs to nobody another test counts. It cannot
change the demo data: under the dev policy an agent's reads run, but every SQL write and every
Kubernetes write waits for an approver, and the fuzzer holds no approval link (exec in the demo
namespace is allowed to agents; a generated argument list that spells a working exec would only
run a command in the Kubernetes stand-in's pod, which no other test's data lives in). Generation is
derandomised (no example database), so a run is repeatable and a failure replays.

Nothing is excluded. Two operations are only reachable on their refusal branches, by design:
``GET``/``POST /approvals/{request_id}`` take a signed link token (``t``) that only the approval
mail carries, so the fuzzer sees the 403/404/410 pages (the deciding branch is driven through
real mail and Chromium in tests/approvals); ``POST /approvals/{request_id}/decision`` takes an
approver delegate's token or an HMAC signature the fuzzer does not hold (401/403/404).
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    ignored_auth,
    missing_required_header,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from devhost.identities import IDENTITIES
from devhost.stack import REPO_ROOT, DevStack

pytestmark = pytest.mark.e2e

SEED = 17
EXAMPLES = 20  # per operation and mode: the whole run stays near two minutes on two busy cores
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, negative_data_rejection, ignored_auth, missing_required_header,
          unsupported_method, allow_header_conformance]


FUZZER_OID = "f0220000-0000-4000-8000-00000000f022"


def fuzzer_token(stack: DevStack) -> str:
    assert stack.issuer is not None
    claims = stack.issuer.claims_for(IDENTITIES["devin"])
    claims.update(oid=FUZZER_OID, azp="f0220000-0000-4000-8000-0000000a9f22", app_displayname="Contract fuzzer",
                  sub="sub-fuzzer")
    return stack.issuer.sign(claims)


def _warm(stack: DevStack, token: str) -> list[str]:
    """Start-up work out of the way (Key Vault, engines), and request ids the fuzzer may reuse."""
    deadline = time.monotonic() + 60
    while httpx.get(f"{stack.base_url}/api/health", timeout=30).status_code != 200:
        assert time.monotonic() < deadline, "the fuzzing stack did not become healthy"
        time.sleep(1)
    headers = {"Authorization": f"Bearer {token}"}
    held = httpx.post(f"{stack.base_url}/api/execute", headers=headers, timeout=60, json={
        "target": "demo-postgres", "sql": "UPDATE customers SET notes = 'fuzz' WHERE id = 1", "reason": "fuzz"})
    grant = httpx.post(f"{stack.base_url}/api/grants", headers=headers, timeout=60, json={
        "target": "demo-postgres", "level": "write", "duration": "PT10M", "reason": "fuzz"})
    assert held.status_code == grant.status_code == 202, (held.text, grant.text)
    return [held.json()["request_id"], grant.json()["request_id"]]


@pytest.fixture(scope="module")
def fuzz_schema(stack: DevStack) -> schemathesis.BaseSchema:
    token = fuzzer_token(stack)
    request_ids = _warm(stack, token)
    config = schemathesis.Config.from_dict({
        "seed": SEED,
        "headers": {"Authorization": f"Bearer {token}"},
        "generation": {"max-examples": EXAMPLES, "deterministic": True, "database": "none"},
        "request-timeout": 60,
        # a schema-violating request must be refused; 413 (body over max_body_bytes) is a refusal too
        "checks": {"negative_data_rejection": {"expected-statuses": [400, 401, 403, 404, 405, 406, 409, 413, 415,
                                                                     422, 428, 429]}},
    })
    schema = schemathesis.openapi.from_url(f"{stack.base_url}/api/openapi.yaml", config=config)
    targets = ["demo-postgres", "demo-k8s"]

    @schema.hook
    def flatmap_body(context: Any, body: Any) -> st.SearchStrategy[Any]:
        """A real target now and then, so requests reach the guard, the policy and the engines."""
        if isinstance(body, dict) and isinstance(body.get("target"), str):
            return st.sampled_from([body["target"], *targets]).map(lambda name: {**body, "target": name})
        return st.just(body)

    @schema.hook
    def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any]) -> st.SearchStrategy[Any]:
        """A real request id now and then (a held change, a pending grant)."""
        if isinstance(path_parameters, dict) and isinstance(path_parameters.get("request_id"), str):
            return st.sampled_from([path_parameters["request_id"], *request_ids]).map(
                lambda rid: {**path_parameters, "request_id": rid})
        return st.just(path_parameters)

    return schema


def _cases() -> list[tuple[str, GenerationMode]]:
    """Every operation with schema-valid requests; those that take input also with invalid ones (an
    operation without parameters or body has nothing to negate: GET /health, /targets, /grants,
    /problems, /openapi.yaml, /.well-known/oauth-protected-resource, GET and DELETE /mcp)."""
    document = yaml.safe_load((REPO_ROOT / "broker/api/openapi.yaml").read_text())
    cases = []
    for operations in document["paths"].values():
        for operation in operations.values():
            cases.append((operation["operationId"], GenerationMode.POSITIVE))
            if operation.get("parameters") or operation.get("requestBody"):
                cases.append((operation["operationId"], GenerationMode.NEGATIVE))
    return cases


@pytest.mark.parametrize(("operation_id", "mode"), _cases(), ids=lambda v: getattr(v, "value", v))
def test_the_served_contract_holds_under_fuzzing(fuzz_schema: schemathesis.BaseSchema, operation_id: str,
                                                 mode: GenerationMode) -> None:
    """Schema-valid requests (positive) and schema-invalid ones (negative) for one operation."""
    operation = fuzz_schema.find_operation_by_id(operation_id)

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate])
    def fuzz(case: schemathesis.Case) -> None:
        case.call_and_validate(checks=CHECKS)

    fuzz()


def test_the_served_document_is_the_one_in_the_repository(stack: DevStack) -> None:
    served = httpx.get(f"{stack.base_url}/api/openapi.yaml", timeout=30)
    assert served.status_code == 200
    assert served.content == (REPO_ROOT / "broker/api/openapi.yaml").read_bytes()
