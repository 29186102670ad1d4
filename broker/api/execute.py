"""``POST /api/execute``: the agent's one endpoint. 200 with the result, or 202 while people decide."""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

import azure.durable_functions as df
import azure.functions as func

from broker.api._durable import blocking, durable_route, pending_response, starter
from broker.api._http import authenticated, call_context, json_response, read_json
from broker.problems import BadRequest

if TYPE_CHECKING:  # the domain loads with the broker (first call), not when the host indexes the app
    from broker.execute import Done, ExecuteBody, Pending, WorkflowStarter
    from broker.identity import Principal
    from broker.runtime import Broker

bp = df.Blueprint()
IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,128}")


@bp.route(route="execute", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
@durable_route(authenticate=False)  # authenticated in the call's one thread hop, before anything else
async def execute(req: func.HttpRequest, client: df.DurableOrchestrationClient, broker: Broker,
                  principal: Principal | None) -> func.HttpResponse:
    from broker.execute import Done

    outcome = await blocking(authenticated_submit, broker, req, time.perf_counter(), starter(client))
    if isinstance(outcome, Done):
        return json_response(outcome.result.to_dict(), headers={"Server-Timing": outcome.result.server_timing()})
    return pending_response(outcome)


def authenticated_submit(broker: Broker, req: func.HttpRequest, submitted: float,
                         workflow: WorkflowStarter) -> Done | Pending:
    """The token, then the body, then the command, in one worker thread: each hop between the event
    loop and a thread costs a wake-up (and, under load, a wait for the GIL), so the call takes one.
    ``submitted`` is when the hop was asked for: the wait for a free thread is reported as ``thread``."""
    from broker.execute import Done, ExecuteBody

    started = time.perf_counter()
    principal = broker.validator.principal_from_header(req.headers.get("authorization"))
    authenticated = time.perf_counter()
    timings = {"thread": (started - submitted) * 1000, "auth": (authenticated - started) * 1000}
    body = with_idempotency_key(ExecuteBody.parse(read_json(req, broker.settings.max_body_bytes)),
                                req.headers.get(IDEMPOTENCY_HEADER))
    outcome = broker.execute.submit(principal, body, call_context(req), workflow=workflow)
    if isinstance(outcome, Done):
        outcome.result.timings = {**timings, **outcome.result.timings}
    return outcome


def with_idempotency_key(body: ExecuteBody, header: str | None) -> ExecuteBody:
    """The ``Idempotency-Key`` header (a structured-field string, quoted or bare) or the body's
    ``idempotency_key``; both at once must agree."""
    if header is None:
        return body
    key = header.strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not IDEMPOTENCY_KEY.fullmatch(key):
        raise BadRequest("The Idempotency-Key header is 1 to 128 printable ASCII characters without spaces.",
                         code="invalid_request")
    if body.idempotency_key is not None and body.idempotency_key != key:
        raise BadRequest("The Idempotency-Key header and the body's idempotency_key differ; send one.",
                         code="invalid_request")
    return body.model_copy(update={"idempotency_key": key})


@bp.route(route="explain", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@authenticated
def explain(req: func.HttpRequest, broker: Broker, principal: Principal) -> func.HttpResponse:
    """What ``/api/execute`` would do with this body, without running anything."""
    from broker.execute import ExecuteBody

    body = ExecuteBody.parse(read_json(req, broker.settings.max_body_bytes))
    return json_response(broker.discovery.explain(principal, body, call_context(req)))


@bp.route(route="targets", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@authenticated
def targets(req: func.HttpRequest, broker: Broker, principal: Principal) -> func.HttpResponse:
    """The targets, each with what *this* caller may do there per risk class."""
    return json_response({"targets": target_views(broker, principal)})


@bp.route(route="targets/{name}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@authenticated
def describe_target(req: func.HttpRequest, broker: Broker, principal: Principal) -> func.HttpResponse:
    """What a target holds for this caller: tables and columns (types, which are sensitive), or the
    Kubernetes verbs, kinds and namespaces the policy can allow; never a value."""
    return json_response(broker.describer.describe(principal, req.route_params.get("name", ""), call_context(req)))


def target_views(broker: Broker, principal: Principal) -> list[dict[str, Any]]:
    views = []
    for target in broker.catalog.targets.values():
        engine = broker.engines[target.engine]
        reason = engine.unavailable_reason()
        language = broker.execute.language_of(target)
        views.append({**target.public_view(), "language": language.name, "available": reason is None,
                      **({"unavailable_reason": reason} if reason else {}),
                      "permissions": broker.discovery.permissions(principal, target, language)})
    return views
