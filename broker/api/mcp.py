"""``/api/mcp``: the broker's operations as MCP tools (Streamable HTTP, stateless, JSON responses).

Built on the official ``mcp`` SDK: its ``StreamableHTTPSessionManager`` (stateless, JSON responses)
serves each POST through an ASGI call made from this HTTP function, so no stream outlives the
request and a client that never opens the GET stream (Devin) works. A call that asks for progress
is answered as an SSE body (progress events, then the result; see ``_wants_progress``). GET and DELETE answer 405
with ``Allow: POST``: there is no server-to-client stream and no session to end.

Authentication is the REST API's: the Entra bearer token, validated before the SDK sees the
request; without a valid one the answer is 401 with ``WWW-Authenticate`` naming the protected
resource metadata (RFC 9728, ``/api/.well-known/oauth-protected-resource``), so OAuth-capable
clients find Entra themselves. The tools live in ``_mcp_tools``, the SDK server in ``_mcp_server``:
both are imported on the first MCP call (the SDK costs ~0.9 s of a cold start that REST calls,
approvals and timers would otherwise pay too).

``GET /api/.well-known/oauth-protected-resource``  the metadata (no authentication)
"""

from __future__ import annotations

import importlib
from dataclasses import replace
from types import ModuleType
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import azure.durable_functions as df
import azure.functions as func

from broker.api._durable import blocking
from broker.api._http import call_context, json_response, problem_response, refusal_response
from broker.api.methods import MethodNotAllowed
from broker.problems import BrokerError, PayloadTooLarge, Unauthenticated
from broker.runtime import get_broker

if TYPE_CHECKING:
    from broker.runtime import Broker

bp = df.Blueprint()
METADATA_ROUTE = ".well-known/oauth-protected-resource"
def _base_url(broker: Broker, req: func.HttpRequest) -> str:
    if broker.settings.public_base_url:
        return broker.settings.public_base_url.rstrip("/")
    parts = urlsplit(req.url)
    return f"{parts.scheme}://{parts.netloc}"


def _unauthenticated(error: BrokerError, req: func.HttpRequest, base: str) -> func.HttpResponse:
    challenge = f'Bearer resource_metadata="{base}/api/{METADATA_ROUTE}"'
    if error.code != "missing_token":  # RFC 6750 §3.1: no error code when no credentials were sent
        challenge += f', error="invalid_token", error_description="{error.code}"'
    return problem_response(error, instance=req.url.split("?")[0], headers={"WWW-Authenticate": challenge})


@bp.route(route=METADATA_ROUTE, methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def protected_resource(req: func.HttpRequest) -> func.HttpResponse:
    """RFC 9728 metadata: which authorization servers issue tokens for ``/api/mcp``, and their scope."""
    try:
        broker = get_broker()
    except BrokerError as error:
        return problem_response(error)
    settings = broker.settings
    base = _base_url(broker, req)
    body = {"resource": f"{base}/api/mcp",
            "authorization_servers": [f"{settings.authority.rstrip('/')}/{t}/v2.0" for t in settings.allowed_tenants],
            "scopes_supported": [f"{a}/.default" for a in settings.audiences if "://" in a],
            "bearer_methods_supported": ["header"],
            "resource_name": "Agent access broker (MCP)",
            "resource_documentation": f"{base}/api/problems"}
    return json_response(body, headers={"Cache-Control": "public, max-age=300"})


@bp.route(route="mcp", methods=["GET", "POST", "DELETE"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
async def mcp_endpoint(req: func.HttpRequest, client: str) -> func.HttpResponse:
    durable: df.DurableOrchestrationClient = client  # type: ignore[assignment]  # the df middleware built it
    try:
        broker = await blocking(get_broker)
        base = _base_url(broker, req)
        try:
            principal = await blocking(broker.validator.principal_from_header, req.headers.get("authorization"))
        except Unauthenticated as error:
            return _unauthenticated(error, req, base)
        if req.method != "POST":
            return _method_not_allowed(req)
        body = req.get_body() or b""
        if len(body) > broker.settings.max_body_bytes:
            raise PayloadTooLarge(f"The body is larger than {broker.settings.max_body_bytes} bytes.")
        ctx = call_context(req)
        sdk = await blocking(_server)
        call = sdk.McpCall(broker, principal, durable, replace(ctx, channel="mcp"))
        token = sdk.current_call.set(call)
        try:
            status, headers, payload = await sdk.serve(req, body)
        finally:
            sdk.current_call.reset(token)
        return func.HttpResponse(payload, status_code=status, headers={
            "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", **headers})
    except Exception as error:
        return refusal_response(error, req, "mcp_endpoint")


def _method_not_allowed(req: func.HttpRequest) -> func.HttpResponse:
    error = MethodNotAllowed(f"{req.method} is not served: this MCP endpoint is stateless (no stream, no "
                             "session).", remedy="Send each JSON-RPC message with POST.")
    return problem_response(error, instance=req.url.split("?")[0], headers={"Allow": "POST"})


def _server() -> ModuleType:
    """The MCP SDK server, imported once, off the event loop (``blocking``)."""
    return importlib.import_module("broker.api._mcp_server")
