"""The requester's side of approval requests.

``GET    /api/requests/{id}``  where a request stands (pending, approved, denied, expired, cancelled,
                               running, done, failed; for grants active, revoked), who decided and
                               what they wrote, the next step, and, when done, the masked result.
                               Visible only to the identity that made the request, and to auditors.
``DELETE /api/requests/{id}``  cancel a pending request (the requester, or an operator): the wait
                               ends at once, nothing runs, the approvers' links stop working.
``GET    /api/requests``       the caller's own requests, newest first (bounded by ``limit``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import azure.durable_functions as df
import azure.functions as func

from broker.api._durable import blocking, durable_route
from broker.api._http import authenticated, json_response, route_request_id
from broker.problems import BadRequest
from broker.workflows.wait import CANCEL_EVENT

if TYPE_CHECKING:  # the domain loads with the broker (first call), not when the host indexes the app
    from broker.identity import Principal
    from broker.runtime import Broker

bp = df.Blueprint()
log = logging.getLogger("broker.api")
MAX_LIST = 100
_WAITING = ("pending", "approved", "running")


def _request_id(req: func.HttpRequest) -> str:
    return route_request_id(req)


@bp.route(route="requests/{request_id}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@authenticated
def request_status(req: func.HttpRequest, broker: Broker, principal: Principal) -> func.HttpResponse:
    body = broker.approvals.approvals.status(_request_id(req), principal)
    headers = {"Retry-After": "1"} if body["status"] in _WAITING else {}
    return json_response(body, headers=headers)


@bp.route(route="requests/{request_id}", methods=["DELETE"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
@durable_route()
async def request_cancel(req: func.HttpRequest, client: df.DurableOrchestrationClient, broker: Broker,
                         principal: Principal) -> func.HttpResponse:
    return json_response(await cancel(client, broker, principal, _request_id(req)))


async def cancel(client: df.DurableOrchestrationClient, broker: Broker, principal: Principal,
                 request_id: str) -> dict[str, Any]:
    """Cancel in the store first (from then on no decision counts and nothing runs), then end the
    workflow's wait. Shared by REST and the MCP ``cancel_request`` tool."""
    approvals = broker.approvals.approvals
    cancelled = await blocking(approvals.cancel, request_id, principal)
    try:
        await client.raise_event(request_id, CANCEL_EVENT, {"by": principal.key})
    except Exception as exc:  # the store says cancelled: nothing runs; the wait ends at its deadline
        log.warning("cancelled %s but could not tell its workflow: %s", request_id, exc)
    if principal.key != cancelled.requester_key:  # an operator: the listing's view, not the command
        return approvals.summary(cancelled)
    return await blocking(approvals.status, request_id, principal)


@bp.route(route="requests", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@authenticated
def request_list(req: func.HttpRequest, broker: Broker, principal: Principal) -> func.HttpResponse:
    """``?mine`` is the only scope (and the default): a caller lists its own requests."""
    unknown = set(req.params) - {"mine", "limit"}
    if unknown:
        raise BadRequest(f"Unknown query parameter(s): {', '.join(sorted(unknown))}; use mine and limit.",
                         code="invalid_request")
    raw = req.params.get("limit", "20")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIST:
        raise BadRequest(f"limit is a whole number from 1 to {MAX_LIST}.", code="invalid_request")
    return json_response({"requests": broker.approvals.approvals.mine(principal, int(raw))})
