"""The MCP SDK server behind ``/api/mcp`` (``mcp.py`` holds the HTTP routes and imports this on
the first MCP call): the tool list and dispatch, and one POST served through the SDK's stateless
session manager as an ASGI call."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import anyio
import azure.functions as func
import mcp_types as types
from mcp.server import Server, ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings

from broker.api import _mcp_tools
from broker.api._mcp_tools import McpCall, current_call

__all__ = ["McpCall", "current_call", "serve", "server"]

_INSTRUCTIONS = (
    "An access broker for databases and Kubernetes clusters. Call list_targets first: it says per target "
    "what you may do. describe_target lists a database's tables and columns (which are sensitive, so masked) "
    "or a cluster's kinds and namespaces. Use explain to ask the policy about a command without running it, "
    "query for SQL reads, change for SQL writes (with a reason; approvals answer pending with a request_id), "
    "kubectl for clusters, and wait_for_request to wait for an approval's outcome. Results are masked; every "
    "call is journaled. A refused call is an error result whose problem JSON says what to do (remedy) and, "
    "where a tool helps, names it (next_tool).")


async def _list_tools(ctx: ServerRequestContext, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
    return types.ListToolsResult(tools=[spec.tool() for spec in _mcp_tools.TOOLS.values()])


async def _call_tool(ctx: ServerRequestContext, params: types.CallToolRequestParams) -> types.CallToolResult:
    return await _mcp_tools.call_tool(params.name, params.arguments, ctx)


server: Server[Any] = Server("agent-access-broker", version="1", instructions=_INSTRUCTIONS,
                             on_list_tools=_list_tools, on_call_tool=_call_tool)


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


async def serve(req: func.HttpRequest, body: bytes) -> tuple[int, dict[str, str], bytes]:
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
