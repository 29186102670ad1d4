"""405 with ``Allow`` for a method a route does not serve, answered by the app itself.

Azure's front end answers a request whose path matches a function but whose method does not with a
bare 404 and no body (azure-functions-host#10098): an agent reading the OpenAPI document would
conclude the path does not exist. So each route also registers one function for the methods it
does not serve, which answers 405 ``method_not_allowed`` (problem+json) with ``Allow`` naming those
it does. ``SERVED`` lists every route's methods; a unit test keeps it equal to the routes the app
registers, so a new route cannot be left without its refusal. HEAD and OPTIONS are left to the
front end (clients send them without reading a contract).
"""

from __future__ import annotations

from collections.abc import Callable

import azure.functions as func

from broker.api._http import problem_response
from broker.problems import BrokerError

bp = func.Blueprint()

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
"""The methods a route refuses itself when it does not serve them."""

SERVED: dict[str, tuple[str, ...]] = {
    "execute": ("POST",), "explain": ("POST",), "targets": ("GET",), "targets/{name}": ("GET",),
    "health": ("GET",), "openapi.yaml": ("GET",), "journal": ("GET",), "requests": ("GET",),
    "requests/{request_id}": ("GET", "DELETE"), "approvals/{request_id}": ("GET", "POST"),
    "approvals/{request_id}/decision": ("POST",), "grants": ("GET", "POST"), "grants/{request_id}/revoke": ("POST",),
    "problems": ("GET",), "problems/{code}": ("GET",), ".well-known/oauth-protected-resource": ("GET",),
    "mcp": ("POST",),
}
"""Each route and the methods the broker serves there (the OpenAPI document's operations)."""

OWN_REFUSALS = {"mcp": ("GET", "DELETE")}
"""Methods a route's own function takes only to refuse them (``/mcp``: 405 after the token check)."""


class MethodNotAllowed(BrokerError):
    status = 405
    default_code = "method_not_allowed"
    title = "Method not allowed"


def refused(route: str) -> tuple[str, ...]:
    """The methods this module's function for ``route`` takes."""
    taken = set(SERVED[route]) | set(OWN_REFUSALS.get(route, ()))
    return tuple(m for m in METHODS if m not in taken)


def _refusal(allow: str) -> Callable[[func.HttpRequest], func.HttpResponse]:
    def method_not_allowed(req: func.HttpRequest) -> func.HttpResponse:
        error = MethodNotAllowed(f"{req.method} is not served here; this path takes {allow}.",
                                 remedy=f"Send {allow} (see the OpenAPI document, GET /api/openapi.yaml).")
        return problem_response(error, instance=req.url.split("?")[0], headers={"Allow": allow})

    return method_not_allowed


for _index, _route in enumerate(SERVED):
    bp.function_name(name=f"method_not_allowed_{_index}")(
        bp.route(route=_route, methods=list(refused(_route)), auth_level=func.AuthLevel.ANONYMOUS)(
            _refusal(", ".join(sorted(SERVED[_route])))))
