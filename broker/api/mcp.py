"""``/api/mcp``: the broker's operations as MCP tools (Streamable HTTP, stateless, JSON responses).

Built on the official ``mcp`` SDK: its ``StreamableHTTPSessionManager`` (stateless, JSON responses)
serves each POST through an ASGI call made from this HTTP function, so no stream outlives the
request and a client that never opens the GET stream (Devin) works. A call that asks for progress
is answered as an SSE body (progress events, then the result; see ``_wants_progress``). GET and DELETE answer 405
with ``Allow: POST``: there is no server-to-client stream and no session to end.

Authentication is the REST API's: the Entra bearer token, validated before the SDK sees the
request; without a valid one the answer is 401 with ``WWW-Authenticate`` naming the protected
resource metadata (RFC 9728, ``/api/.well-known/oauth-protected-resource``), so OAuth-capable
clients find Entra themselves. The tools live in ``_mcp_tools``.

``GET /api/.well-known/oauth-protected-resource``  the metadata (no authentication)
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import anyio
import azure.durable_functions as df
import azure.functions as func
import mcp_types as types
from mcp.server import Server, ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings

from broker.api import _mcp_tools
from broker.api._durable import blocking
from broker.api._http import PROBLEM, call_context, json_response, problem_response, refusal_response
from broker.problems import BrokerError, PayloadTooLarge, Unauthenticated
from broker.runtime import Broker, get_broker

bp = df.Blueprint()
METADATA_ROUTE = ".well-known/oauth-protected-resource"
_INSTRUCTIONS = (
    "An access broker for databases and Kubernetes clusters. Call list_targets first: it says per target "
    "what you may do. Use explain to ask the policy about a command without running it, query for SQL "
    "reads, change for SQL writes (with a reason; approvals answer pending with a request_id), kubectl for "
    "clusters, and wait_for_request to wait for an approval's outcome. Results are masked; every call is "
    "journaled. A refused call is an error result whose problem JSON names the next tool to call.")


async def _list_tools(ctx: ServerRequestContext, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
    return types.ListToolsResult(tools=[spec.tool() for spec in _mcp_tools.TOOLS.values()])


async def _call_tool(ctx: ServerRequestContext, params: types.CallToolRequestParams) -> types.CallToolResult:
    return await _mcp_tools.call_tool(params.name, params.arguments, ctx)


server: Server[Any] = Server("agent-access-broker", version="1", instructions=_INSTRUCTIONS,
                             on_list_tools=_list_tools, on_call_tool=_call_tool)


def _base_url(broker: Broker, req: func.HttpRequest) -> str:
    if broker.settings.public_base_url:
        return broker.settings.public_base_url.rstrip("/")
    parts = urlsplit(req.url)
    return f"{parts.scheme}://{parts.netloc}"


def _unauthenticated(error: BrokerError, req: func.HttpRequest, base: str) -> func.HttpResponse:
    response = problem_response(error, instance=req.url.split("?")[0])
    challenge = f'Bearer resource_metadata="{base}/api/{METADATA_ROUTE}"'
    if error.code != "missing_token":  # RFC 6750 §3.1: no error code when no credentials were sent
        challenge += f', error="invalid_token", error_description="{error.code}"'
    headers = {**dict(response.headers), "WWW-Authenticate": challenge}
    return func.HttpResponse(response.get_body(), status_code=401, mimetype=PROBLEM, headers=headers)


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
        call = _mcp_tools.McpCall(broker, principal, durable, replace(ctx, channel="mcp"))
        token = _mcp_tools.current_call.set(call)
        try:
            status, headers, payload = await _serve(req, body)
        finally:
            _mcp_tools.current_call.reset(token)
        return func.HttpResponse(payload, status_code=status, headers={
            "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", **headers})
    except Exception as error:
        return refusal_response(error, req, "mcp_endpoint")


def _method_not_allowed(req: func.HttpRequest) -> func.HttpResponse:
    body = {"type": "about:blank", "title": "Method not allowed", "status": 405, "code": "method_not_allowed",
            "detail": f"{req.method} is not served: this MCP endpoint is stateless (no stream, no session); "
                      "send JSON-RPC messages with POST."}
    return func.HttpResponse(json.dumps(body), status_code=405, mimetype=PROBLEM,
                             headers={"Allow": "POST", "Cache-Control": "no-store"})


def _wants_progress(req: func.HttpRequest, body: bytes) -> bool:
    """A call that asked for progress (``_meta.progressToken``) from a client that reads SSE.

    JSON responses have no place for notifications, so such a call is answered as an SSE body
    instead: the progress events, then the result. The Functions host sends the body once the
    function returns, so the events arrive together with the result, not as they happen.
    """
    if "text/event-stream" not in (req.headers.get("accept") or "") or b"progressToken" not in body:
        return False
    try:
        message = json.loads(body)
    except ValueError:
        return False
    meta = (message.get("params") or {}).get("_meta") if isinstance(message, dict) else None
    return isinstance(meta, dict) and "progressToken" in meta


async def _serve(req: func.HttpRequest, body: bytes) -> tuple[int, dict[str, str], bytes]:
    """One POST through the SDK's stateless, JSON-answering session manager, as an ASGI call."""
    parts = urlsplit(req.url)
    host = parts.hostname or "localhost"
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": parts.scheme or "https", "path": parts.path, "raw_path": parts.path.encode(),
             "query_string": parts.query.encode(), "root_path": "",
             "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in req.headers.items()],
             "server": (host, parts.port or (443 if parts.scheme == "https" else 80)), "client": None}
    done = anyio.Event()
    sent_body = False
    status, headers, chunks = 500, {}, []

    async def receive() -> dict[str, Any]:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            for name, value in message.get("headers", []):
                headers[name.decode("latin-1")] = value.decode("latin-1")
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                done.set()

    # The request carries a bearer token (no cookies), so DNS rebinding gains an attacker nothing;
    # the host check would only refuse the front end's own host names.
    manager = StreamableHTTPSessionManager(server, json_response=not _wants_progress(req, body), stateless=True,
                                           security_settings=TransportSecuritySettings(
                                               enable_dns_rebinding_protection=False))
    async with manager.run():
        await manager.handle_request(scope, receive, send)
    done.set()
    headers.pop("content-length", None)
    return status, headers, b"".join(chunks)
