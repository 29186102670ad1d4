"""The Durable extension's HTTP management API, as ``DurableOrchestrationClient`` calls it.

Served twice, like the real host does: at ``rpcBaseUrl`` (``http://127.0.0.1:<port>/durabletask/``,
loopback only, no key — the client binding's channel) and as the public webhooks under
``/runtime/webhooks/durabletask/`` on the devhost's own port, which require the system key
(``?code=`` or ``x-functions-key``), the URLs ``create_check_status_response`` hands out.

Routes, status codes and payloads follow the extension's ``HttpApiHandler``: start (202 + the
management URLs), raise event (202/404/410/400), status (200/202 + ``historyEvents``), query,
terminate (202/404/410), purge by id or by filter (200/404).
"""

from __future__ import annotations

import hmac
import json
import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from devhost._http import Request, Response, Route
from devhost.durable import history as h
from devhost.durable.errors import BadRequest, Conflict, NotFound
from devhost.durable.model import InstanceState
from devhost.durable.payloads import token

if TYPE_CHECKING:
    from devhost.durable.engine import DurableEngine

RPC_PREFIX = "/durabletask"
WEBHOOK_PREFIX = "/runtime/webhooks/durabletask"
ADMIN_PREFIX = "/admin/durable"
_SEGMENT = r"[^/]+"


def management_routes(engine: DurableEngine, prefix: str, *, require_key: bool) -> list[Route]:
    api = ManagementApi(engine, require_key)
    p = re.escape(prefix)
    return [
        ("POST", re.compile(fr"{p}/orchestrators/(?P<function>{_SEGMENT})(?:/(?P<instance>{_SEGMENT}))?/?"), api.start),
        ("GET", re.compile(fr"{p}/instances/?"), api.query),
        ("DELETE", re.compile(fr"{p}/instances/?"), api.purge_by),
        ("GET", re.compile(fr"{p}/instances/(?P<instance>{_SEGMENT})/?"), api.status),
        ("DELETE", re.compile(fr"{p}/instances/(?P<instance>{_SEGMENT})/?"), api.purge),
        ("POST", re.compile(fr"{p}/instances/(?P<instance>{_SEGMENT})/raiseEvent/(?P<event>{_SEGMENT})/?"),
         api.raise_event),
        ("POST", re.compile(fr"{p}/instances/(?P<instance>{_SEGMENT})/terminate/?", re.IGNORECASE), api.terminate),
        ("POST", re.compile(fr"{p}/instances/(?P<instance>{_SEGMENT})/(?P<op>rewind|restart|suspend|resume)/?",
                            re.IGNORECASE), api.not_implemented),
    ]


def admin_routes(engine: DurableEngine) -> list[Route]:
    admin = AdminApi(engine)
    p = re.escape(ADMIN_PREFIX)
    return [
        ("GET", re.compile(fr"{p}/clock/?"), admin.clock),
        ("POST", re.compile(fr"{p}/clock/advance/?"), admin.advance),
        ("POST", re.compile(fr"{p}/idle/?"), admin.idle),
        ("GET", re.compile(fr"{p}/instances/(?P<instance>{_SEGMENT})/?"), admin.instance),
    ]


def _error(status: int, message: str, exception: str | None = None, kind: str = "System.ArgumentException") -> Response:
    body: dict[str, Any] = {"Message": message}
    if exception is not None:
        body.update(ExceptionMessage=exception, ExceptionType=kind)
    return Response(status, body)


def _flag(query: dict[str, str], name: str, default: bool) -> bool:
    value = query.get(name)
    if value is None:
        return default
    return value.strip().lower() == "true"


def _time(query: dict[str, str], name: str) -> datetime | None:
    value = query.get(name)
    if not value:
        return None
    try:
        return h.parse_time(value)
    except ValueError:
        return None


def _status_time(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None  # ToString("s") + "Z"


class _Guarded:
    def __init__(self, engine: DurableEngine, require_key: bool) -> None:
        self.engine = engine
        self.require_key = require_key

    def authorized(self, request: Request) -> bool:
        if not self.require_key:
            return True
        given = request.query.get("code") or request.headers.get("x-functions-key") or ""
        return hmac.compare_digest(given.encode(), self.engine.system_key.encode())


def guarded(handler: Callable[[Any, Request], Response]) -> Callable[[Any, Request], Response]:
    def wrapper(self: _Guarded, request: Request) -> Response:
        if not self.authorized(request):
            return Response(401, {"Message": "A valid system key is required (code query parameter or "
                                             "x-functions-key header)."})
        try:
            return handler(self, request)
        except NotFound:
            return Response(404, None)
        except BadRequest as exc:
            return _error(400, exc.title, str(exc))
    wrapper.__name__ = handler.__name__
    return wrapper


class ManagementApi(_Guarded):
    @guarded
    def start(self, request: Request) -> Response:
        function = unquote(request.match["function"])
        instance_id = unquote(request.match["instance"]) if request.match.get("instance") else None
        input_text = None
        if request.body.strip():
            try:
                input_text = json.dumps(json.loads(request.body))
            except ValueError as exc:
                return _error(400, "Invalid JSON content", str(exc), "Newtonsoft.Json.JsonReaderException")
        try:
            state = self.engine.start_new(function, instance_id, input_text)
        except Conflict as exc:
            return _error(500, "Something went wrong while processing your request", str(exc),
                          "System.InvalidOperationException")
        timeout = request.query.get("timeout")
        if timeout and request.query.get("pollingInterval"):
            return self._wait(state.instance_id, float(timeout), float(request.query["pollingInterval"]))
        return self._check_status(state.instance_id)

    def _check_status(self, instance_id: str) -> Response:
        links = self.engine.management_urls(instance_id)
        body = {k: links[k] for k in ("id", "statusQueryGetUri", "sendEventPostUri", "terminatePostUri",
                                      "purgeHistoryDeleteUri", "restartPostUri", "suspendPostUri", "resumePostUri")}
        return Response(202, body, headers={"Location": links["statusQueryGetUri"], "Retry-After": "10"})

    def _wait(self, instance_id: str, timeout: float, interval: float) -> Response:
        deadline = time.monotonic() + timeout
        while True:
            state = self.engine.store.get_state(instance_id)
            if state is not None and state.terminal:
                if state.status == "Completed":
                    return Response(200, token(state.output))
                return Response(200, status_payload(state))
            if time.monotonic() >= deadline:
                return self._check_status(instance_id)
            time.sleep(min(interval, max(0.0, deadline - time.monotonic())))

    @guarded
    def status(self, request: Request) -> Response:
        instance_id = unquote(request.match["instance"])
        q = request.query
        show_history, show_output = _flag(q, "showHistory", False), _flag(q, "showHistoryOutput", False)
        show_input = _flag(q, "showInput", True)
        state = self.engine.store.get_state(instance_id)
        if state is None:
            return Response(404, None)
        events = None
        if show_history and state.status != "Pending":
            record = self.engine.store.load(instance_id)
            if record is not None:
                state = record.state
                events = h.for_status(record.history, show_output=show_output, show_input=show_input)
        body = status_payload(state, events, show_input=show_input)
        if state.active:
            return Response(202, body, headers={"Location": self.engine.request_url(request), "Retry-After": "5"})
        if state.status == "Failed" and _flag(q, "returnInternalServerErrorOnFailure", False):
            return Response(500, body)
        return Response(200, body)

    @guarded
    def query(self, request: Request) -> Response:
        q = request.query
        statuses = {s.strip() for s in q.get("runtimeStatus", "").split(",") if s.strip()}
        states = self.engine.query(created_from=_time(q, "createdTimeFrom"), created_to=_time(q, "createdTimeTo"),
                                   statuses=statuses or None, prefix=q.get("instanceIdPrefix"))
        show_input = _flag(q, "showInput", True)
        top = int(q["top"]) if q.get("top", "").isdigit() else None
        after = request.headers.get("x-ms-continuation-token") or ""
        if after:
            states = [s for s in states if s.instance_id > after]
        token_out = ""
        if top is not None and len(states) > top:
            states = states[:top]
            token_out = states[-1].instance_id
        return Response(200, [status_payload(s, show_input=show_input) for s in states],
                        headers={"x-ms-continuation-token": token_out})

    @guarded
    def purge(self, request: Request) -> Response:
        deleted = self.engine.purge(unquote(request.match["instance"]))
        return Response(200, {"instancesDeleted": 1}) if deleted else Response(404, None)

    @guarded
    def purge_by(self, request: Request) -> Response:
        q = request.query
        created_from = _time(q, "createdTimeFrom")
        if created_from is None:
            return Response(400, "Please provide value for 'createdTimeFrom' parameter.")
        statuses = {s.strip() for s in q.get("runtimeStatus", "").split(",") if s.strip()}
        count = self.engine.purge_by(created_from, _time(q, "createdTimeTo"), statuses or None)
        return Response(200, {"instancesDeleted": count}) if count else Response(404, None)

    @guarded
    def raise_event(self, request: Request) -> Response:
        instance_id, name = unquote(request.match["instance"]), unquote(request.match["event"])
        state = self.engine.store.get_state(instance_id)
        if state is None:
            return Response(404, None)
        if state.terminal:
            return Response(410, None)
        if (request.headers.get("content-type") or "").split(";")[0].strip().lower() != "application/json":
            return _error(400, "Only application/json request content is supported")
        try:
            data = json.loads(request.body)
        except ValueError as exc:
            return _error(400, "Invalid JSON content", str(exc), "Newtonsoft.Json.JsonReaderException")
        self.engine.raise_event(instance_id, name, json.dumps(data))
        return Response(202, None)

    @guarded
    def terminate(self, request: Request) -> Response:
        instance_id = unquote(request.match["instance"])
        state = self.engine.store.get_state(instance_id)
        if state is None:
            return Response(404, None)
        if state.terminal:
            return Response(410, None)
        self.engine.terminate(instance_id, request.query.get("reason"))
        return Response(202, None)

    @guarded
    def not_implemented(self, request: Request) -> Response:
        return _error(501, f"The devhost Durable engine does not implement {request.match['op']}.")


def status_payload(state: InstanceState, events: list[dict[str, Any]] | None = None, *,
                   show_input: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": state.name, "instanceId": state.instance_id, "runtimeStatus": state.status,
        "input": token(state.input) if show_input else None, "customStatus": token(state.custom_status),
        "output": token(state.output), "createdTime": _status_time(state.created),
        "lastUpdatedTime": _status_time(state.updated),
    }
    if events is not None:
        body["historyEvents"] = events
    return body


class AdminApi(_Guarded):
    """Dev-only controls: the manual clock, waiting until the engine is idle, an instance's raw view."""

    def __init__(self, engine: DurableEngine) -> None:
        super().__init__(engine, require_key=True)

    @guarded
    def clock(self, request: Request) -> Response:
        clock = self.engine.clock
        return Response(200, {"now": h.format_time(clock.now()), "manual": clock.manual})

    @guarded
    def advance(self, request: Request) -> Response:
        if not self.engine.clock.manual:
            return Response(409, {"Message": "The clock is wall time; start the devhost with "
                                             "DEVHOST_DURABLE_CLOCK=manual to move it."})
        try:
            body = request.json() or {}
            seconds = body.get("seconds", request.query.get("seconds"))
            to = body.get("to", request.query.get("to"))
            now = self.engine.advance_clock(seconds=float(seconds) if seconds is not None else None,
                                            to=h.parse_time(to) if to else None)
        except (ValueError, TypeError) as exc:
            return Response(400, {"Message": str(exc)})
        return Response(200, {"now": h.format_time(now), "manual": True})

    @guarded
    def idle(self, request: Request) -> Response:
        timeout = float(request.query.get("timeout") or 10)
        idle = self.engine.dispatcher.wait_idle(timeout)
        return Response(200 if idle else 503, {"idle": idle, **self.engine.dispatcher.counts()})

    @guarded
    def instance(self, request: Request) -> Response:
        record = self.engine.store.load(unquote(request.match["instance"]))
        if record is None:
            return Response(404, None)
        state = record.state
        return Response(200, {**status_payload(state), "executionId": state.execution_id,
                              "diagnostics": state.diagnostics, "history": record.history,
                              "inbox": [m.key for m in record.messages], "activityMarkers": list(record.markers)})


def encode_segment(value: str) -> str:
    return quote(value, safe="")
