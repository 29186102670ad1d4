"""``POST /api/execute``: the agent's one endpoint. 200 with the result, or 202 while people decide."""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df
import azure.functions as func

from broker.api._durable import APPROVAL_ORCHESTRATOR, blocking, durable_route, start_workflow
from broker.api._http import authenticated, call_context, json_response, read_json
from broker.execute import ApprovalNeeded, ExecuteBody
from broker.identity import Principal
from broker.runtime import Broker

bp = df.Blueprint()


@bp.route(route="execute", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
@durable_route()
async def execute(req: func.HttpRequest, client: df.DurableOrchestrationClient, broker: Broker,
                  principal: Principal) -> func.HttpResponse:
    body = ExecuteBody.parse(read_json(req, broker.settings.max_body_bytes))
    ctx = call_context(req)
    outcome = await blocking(broker.execute.execute, principal, body, ctx)
    if not isinstance(outcome, ApprovalNeeded):
        return json_response(outcome.to_dict(), headers={"Server-Timing": outcome.server_timing()})
    request = await blocking(broker.approvals.approvals.hold_command, outcome, ctx)
    return await start_workflow(client, broker, request, APPROVAL_ORCHESTRATOR)


@bp.route(route="explain", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@authenticated
def explain(req: func.HttpRequest, broker: Broker, principal: Principal) -> func.HttpResponse:
    """What ``/api/execute`` would do with this body, without running anything."""
    body = ExecuteBody.parse(read_json(req, broker.settings.max_body_bytes))
    return json_response(broker.discovery.explain(principal, body, call_context(req)))


@bp.route(route="targets", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@authenticated
def targets(req: func.HttpRequest, broker: Broker, principal: Principal) -> func.HttpResponse:
    """The targets, each with what *this* caller may do there per risk class."""
    return json_response({"targets": target_views(broker, principal)})


def target_views(broker: Broker, principal: Principal) -> list[dict[str, Any]]:
    views = []
    for target in broker.catalog.targets.values():
        engine = broker.engines[target.engine]
        reason = engine.unavailable_reason()
        views.append({**target.public_view(), "language": engine.language, "available": reason is None,
                      **({"unavailable_reason": reason} if reason else {}),
                      "permissions": broker.discovery.permissions(principal, target, engine.language)})
    return views
