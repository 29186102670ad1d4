"""``GET /api/requests/{id}``: where a request stands (pending, approved, denied, expired, running,
done, failed; for grants active, revoked), who decided, and, when done, the masked result.
Visible only to the identity that made the request, and to auditors."""

from __future__ import annotations

import azure.functions as func

from broker.api._http import authenticated, json_response
from broker.identity import Principal
from broker.problems import NotFound
from broker.runtime import Broker

bp = func.Blueprint()


@bp.route(route="requests/{request_id}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@authenticated
def request_status(req: func.HttpRequest, broker: Broker, principal: Principal) -> func.HttpResponse:
    request_id = req.route_params.get("request_id", "")
    if not 8 <= len(request_id) <= 64:
        raise NotFound("No such request.", code="not_found")
    body = broker.approvals.approvals.status(request_id, principal)
    headers = {"Retry-After": "1"} if body["status"] in ("pending", "approved", "running") else {}
    return json_response(body, headers=headers)
