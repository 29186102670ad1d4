"""Async HTTP functions that hold a Durable client: authentication, blocking domain calls off the
event loop, refusals as problem+json, and starting an approval workflow.

The Durable client is async and shares one HTTP session per event loop, so these handlers are
``async``; the domain is synchronous (Table Storage, PostgreSQL), so every domain call goes
through ``blocking`` to keep the worker's event loop free.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

import azure.durable_functions as df
import azure.functions as func

from broker.api._http import json_response, refusal_response
from broker.approvals import ApprovalRequest
from broker.execute import ApprovalNeeded, CallContext
from broker.problems import Unavailable
from broker.runtime import Broker, get_broker

log = logging.getLogger("broker.api")
T = TypeVar("T")

APPROVAL_ORCHESTRATOR = "approval_orchestrator"
GRANT_ORCHESTRATOR = "grant_orchestrator"


async def blocking(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await asyncio.to_thread(partial(fn, *args, **kwargs))


AsyncHandler = Callable[..., Awaitable[func.HttpResponse]]


def durable_route(*, authenticate: bool = True) -> Callable[[AsyncHandler], AsyncHandler]:
    """Wrap ``handler(req, client, broker, principal, ...)``; the worker sees ``(req, client, ...)``."""

    def decorate(handler: AsyncHandler) -> AsyncHandler:
        async def wrapper(req: func.HttpRequest, *args: Any, **kwargs: Any) -> func.HttpResponse:
            try:
                broker = await blocking(get_broker)
                principal = None
                if authenticate:
                    principal = await blocking(broker.validator.principal_from_header, req.headers.get("authorization"))
                return await handler(req, *args, broker=broker, principal=principal, **kwargs)
            except Exception as error:
                return refusal_response(error, req, handler.__name__)

        # The Functions worker binds parameters by name and type-checks their annotations; the
        # Durable client arrives as a JSON string (the df middleware turns it into a client).
        signature = inspect.signature(handler)
        wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[p.replace(annotation=str) if name == "client" else p
                        for name, p in signature.parameters.items() if name not in ("broker", "principal")])
        for attr in ("__name__", "__qualname__", "__doc__", "__module__"):
            setattr(wrapper, attr, getattr(handler, attr))
        wrapper.__annotations__ = {k: (str if k == "client" else v)
                                   for k, v in getattr(handler, "__annotations__", {}).items()
                                   if k not in ("broker", "principal")}
        return wrapper

    return decorate


async def start_workflow(client: df.DurableOrchestrationClient, broker: Broker, request: ApprovalRequest,
                         orchestrator: str, **extra: Any) -> func.HttpResponse:
    """Start the request's orchestration (instance id = request id) and answer 202."""
    body = await start_held(client, broker, request, orchestrator, **extra)
    return json_response(body, 202, headers={"Location": body["status_url"], "Retry-After": "2"})


async def start_held(client: df.DurableOrchestrationClient, broker: Broker, request: ApprovalRequest,
                     orchestrator: str, **extra: Any) -> dict[str, Any]:
    """Start the orchestration for a held request; the pending answer (REST 202 body, MCP result)."""
    payload = {"request_id": request.request_id, "quorum": request.quorum,
               "deadline": request.expires_at.isoformat(), **extra}
    try:
        await client.start_new(orchestrator, request.request_id, payload)
    except Exception as exc:
        log.warning("could not start %s for %s: %s", orchestrator, request.request_id, exc)
        error = Unavailable("The approval workflow could not start; nothing will run.", code="workflow_unavailable")
        await blocking(broker.approvals.approvals.abandon, request.request_id, error)
        raise error from exc
    return held_body(broker, request)


def held_body(broker: Broker, request: ApprovalRequest) -> dict[str, Any]:
    """The pending answer for a held request (REST 202 body, MCP result)."""
    status_url = broker.approvals.approvals.status_url(request.request_id)
    return {"status": request.status, "kind": request.kind, "request_id": request.request_id,
            "status_url": status_url, "expires_at": request.expires_at.isoformat(), "target": request.target,
            "risk": request.classification.get("risk"),
            "approval": {"quorum": request.quorum, "groups": request.requirement.get("groups", [])}}


async def hold_and_start(client: df.DurableOrchestrationClient, broker: Broker, needed: ApprovalNeeded,
                         ctx: CallContext) -> dict[str, Any]:
    """Hold the command and start its workflow; a resubmission (the same command pending, or the
    same idempotency key) answers with the request already open and starts nothing."""
    request = await blocking(broker.approvals.approvals.hold_command, needed, ctx)
    if request.request_id != needed.request_id:
        return {**held_body(broker, request), "resubmitted": True}
    return await start_held(client, broker, request, APPROVAL_ORCHESTRATOR)
