"""``POST /api/execute``: the agent's one endpoint."""

from __future__ import annotations

import azure.durable_functions as df
import azure.functions as func

from broker.api._http import authenticated, call_context, json_response, read_json
from broker.execute import ExecuteBody
from broker.identity import Principal
from broker.runtime import Broker

bp = df.Blueprint()


@bp.route(route="execute", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@authenticated
def execute(req: func.HttpRequest, broker: Broker, principal: Principal) -> func.HttpResponse:
    body = ExecuteBody.parse(read_json(req, broker.settings.max_body_bytes))
    result = broker.execute.execute(principal, body, call_context(req))
    return json_response(result.to_dict())


@bp.route(route="targets", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@authenticated
def targets(req: func.HttpRequest, broker: Broker, principal: Principal) -> func.HttpResponse:
    return json_response({"targets": [t.public_view() for t in broker.catalog.targets.values()]})
