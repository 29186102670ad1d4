"""``POST /api/execute``: the agent's one endpoint. 200 with the result, or 202 while people decide."""

from __future__ import annotations

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


@bp.route(route="targets", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@authenticated
def targets(req: func.HttpRequest, broker: Broker, principal: Principal) -> func.HttpResponse:
    views = []
    for target in broker.catalog.targets.values():
        reason = broker.engines[target.engine].unavailable_reason()
        views.append({**target.public_view(), "available": reason is None,
                      **({"unavailable_reason": reason} if reason else {})})
    return json_response({"targets": views})
