"""Just-in-time grants.

``POST /api/grants``              {target, level, duration (ISO 8601), reason} -> 202 while approvers decide
``GET  /api/grants``              the caller's grants, newest first
``POST /api/grants/{id}/revoke``  end an active grant early (an approver of it, or its grantee)
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import azure.durable_functions as df
import azure.functions as func

from broker.api._durable import blocking, durable_route, pending_response, starter
from broker.api._http import authenticated, call_context, json_response, read_json, route_request_id
from broker.workflows.wait import REVOKE_EVENT

if TYPE_CHECKING:  # the domain loads with the broker (first call), not when the host indexes the app
    from broker.identity import Principal
    from broker.runtime import Broker

bp = df.Blueprint()


@bp.route(route="grants", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
@durable_route()
async def grant_request(req: func.HttpRequest, client: df.DurableOrchestrationClient, broker: Broker,
                        principal: Principal) -> func.HttpResponse:
    from broker.grants import GrantBody

    body = GrantBody.parse(read_json(req, broker.settings.max_body_bytes))
    pending = await blocking(broker.approvals.grants.submit, principal, body, call_context(req),
                             workflow=starter(client))
    return pending_response(pending)


@bp.route(route="grants", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@authenticated
def grant_list(req: func.HttpRequest, broker: Broker, principal: Principal) -> func.HttpResponse:
    return json_response({"grants": broker.approvals.grants.list_for(principal)})


@bp.route(route="grants/{request_id}/revoke", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
@durable_route()
async def grant_revoke(req: func.HttpRequest, client: df.DurableOrchestrationClient, broker: Broker,
                       principal: Principal) -> func.HttpResponse:
    rid = route_request_id(req, "grant")
    result = await blocking(broker.approvals.grants.revoke, rid, principal)
    # The grant is already revoked in storage (the execute path stops honouring it now); the
    # event only lets the orchestration end early instead of at the expiry timer, and the
    # orchestration may already be gone: the revoke stands either way.
    with contextlib.suppress(Exception):
        await client.raise_event(rid, REVOKE_EVENT, {"by": principal.key})
    return json_response({"request_id": rid, **result})

