"""Async HTTP functions that hold a Durable client: authentication, blocking domain calls off the
event loop, refusals as problem+json, and starting an approval workflow.

The Durable client is async and shares one HTTP session per event loop, so these handlers are
``async``; the domain is synchronous (Table Storage, PostgreSQL), so every domain call goes
through ``blocking`` to keep the worker's event loop free, and starts a workflow through
``DurableStarter`` (the domain's ``WorkflowStarter`` port).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import azure.durable_functions as df
import azure.functions as func

from broker.api._http import json_response, refusal_response
from broker.runtime import built_broker, get_broker

if TYPE_CHECKING:
    from broker.execute import Pending

log = logging.getLogger("broker.api")
T = TypeVar("T")

async def blocking(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await asyncio.to_thread(partial(fn, *args, **kwargs))


AsyncHandler = Callable[..., Awaitable[func.HttpResponse]]


def with_timing(response: func.HttpResponse, started: float, authenticated: float) -> func.HttpResponse:
    """An answer that reports its phases (``Server-Timing``) also gets ``auth`` (the broker and the
    token; unless the handler timed it itself) and ``app`` (the whole function, hand-offs and the
    answer's encoding included): what is ``app`` but no phase is ours too, and what lies outside
    ``app`` is the host's."""
    phases = response.headers.get("Server-Timing")
    if phases:
        done = time.perf_counter()
        if "auth;dur=" not in phases:
            phases = f"auth;dur={(authenticated - started) * 1000:.2f}, {phases}"
        response.headers["Server-Timing"] = f"{phases}, app;dur={(done - started) * 1000:.2f}"
    return response


def durable_route(*, authenticate: bool = True) -> Callable[[AsyncHandler], AsyncHandler]:
    """Wrap ``handler(req, client, broker, principal, ...)``; the worker sees ``(req, client, ...)``."""

    def decorate(handler: AsyncHandler) -> AsyncHandler:
        async def wrapper(req: func.HttpRequest, *args: Any, **kwargs: Any) -> func.HttpResponse:
            started = time.perf_counter()
            try:
                # built once per process: later calls take it without a thread hop
                broker = built_broker() or await blocking(get_broker)
                principal = None
                if authenticate:
                    principal = await blocking(broker.validator.principal_from_header, req.headers.get("authorization"))
                authenticated = time.perf_counter()
                response = await handler(req, *args, broker=broker, principal=principal, **kwargs)
            except Exception as error:
                return refusal_response(error, req, handler.__name__)
            return with_timing(response, started, authenticated)

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


class DurableStarter:
    """The execute service's ``WorkflowStarter`` on the Durable client of this HTTP call.

    The domain runs in a worker thread (``blocking``); the client is async and bound to the event
    loop, so the start is handed back to that loop and waited for."""

    def __init__(self, client: df.DurableOrchestrationClient, loop: asyncio.AbstractEventLoop) -> None:
        self._client = client
        self._loop = loop

    def start(self, orchestrator: str, request_id: str, payload: dict[str, Any]) -> None:
        started = asyncio.run_coroutine_threadsafe(self._client.start_new(orchestrator, request_id, payload),
                                                   self._loop)
        started.result(timeout=START_TIMEOUT_SECONDS)


START_TIMEOUT_SECONDS = 30


def starter(client: df.DurableOrchestrationClient) -> DurableStarter:
    """A workflow starter for the running handler's event loop."""
    return DurableStarter(client, asyncio.get_running_loop())


def pending_response(pending: Pending) -> func.HttpResponse:
    """202 with the held request; poll ``Location``."""
    body = pending.held.to_dict()
    return json_response(body, 202, headers={"Location": body["status_url"], "Retry-After": "2"})
