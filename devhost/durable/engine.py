"""The local Durable Functions runtime: storage, clock, work loops and the management API together.

``DurableEngine.attach(server)`` plugs it into the devhost's HTTP server: the ``durableClient``
binding provider, the public webhooks and the admin endpoints; it also starts the loopback
listener that serves ``rpcBaseUrl``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import secrets
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

from devhost._http import Request, Response, Route, StandInServer
from devhost.durable.api import (
    ADMIN_PREFIX,
    RPC_PREFIX,
    WEBHOOK_PREFIX,
    admin_routes,
    management_routes,
)
from devhost.durable.clock import Clock, ManualClock, WallClock
from devhost.durable.dispatcher import Dispatcher
from devhost.durable.errors import BadRequest, Conflict
from devhost.durable.lease import HubLease
from devhost.durable.model import InstanceState, Message
from devhost.durable.settings import EngineSettings
from devhost.durable.store import InstanceExistsError, TaskHubStore
from devhost.functions import FunctionIndex

if TYPE_CHECKING:
    from devhost.server import FunctionsHttpServer

log = logging.getLogger("devhost.durable")
INSTANCE_PLACEHOLDER = "INSTANCEID"
MAX_INSTANCE_ID = 256
SYSTEM_KEY_NAME = "durabletask_extension"


class DurableEngine:
    def __init__(self, index: FunctionIndex, settings: EngineSettings, run_async: Callable[[Any], Any],
                 public_base_url: str) -> None:
        self.index = index
        self.settings = settings
        self.run_async = run_async
        self.public_base_url = public_base_url.rstrip("/")
        self.store = TaskHubStore(settings.connection_string, settings.task_hub)
        self.providers: dict[str, Callable[[Any, Any], Any]] = {"durableClient": self.client_binding}
        self.clock: Clock = WallClock()
        self.system_key = settings.system_key or ""
        self.dispatcher = Dispatcher(self)
        self.rpc: StandInServer | None = None
        self.lease: HubLease | None = None

    # --- lifecycle -----------------------------------------------------------------------
    def start(self) -> DurableEngine:
        self.store.create()
        self.lease = HubLease(_container(self.settings, "azure-webjobs-hosts"), self.settings.task_hub)
        self.lease.acquire()
        try:
            self._start_parts()
        except BaseException:
            self.lease.release()
            raise
        return self

    def _start_parts(self) -> None:
        if self.settings.clock == "manual":
            self.clock = ManualClock(_container(self.settings, f"{self.settings.task_hub.lower()}-devhost"))
        self.system_key = self.settings.system_key or _persistent_key(_container(self.settings,
                                                                                 "azure-webjobs-secrets"))
        self.rpc = StandInServer("127.0.0.1", self.settings.rpc_port,
                                 management_routes(self, RPC_PREFIX, require_key=False))
        # Headers and body are separate writes: without TCP_NODELAY each call waits ~40 ms for an ACK.
        self.rpc.RequestHandlerClass = type("RpcHandler", (self.rpc.RequestHandlerClass,),
                                            {"disable_nagle_algorithm": True})
        self.rpc.start_background()
        self.dispatcher.start()
        log.info("durable engine: task hub %s, %d orchestrator(s), %d activit(y/ies), clock %s, rpc %s",
                 self.settings.task_hub, len({f.name for f in self.index.orchestrators.values()}),
                 len({f.name for f in self.index.activities.values()}), self.settings.clock, self.rpc_base_url)

    def stop(self, grace: float = 10.0) -> None:
        self.dispatcher.stop(grace)
        log.debug("durable engine: work loops stopped")
        if self.rpc is not None:
            self.rpc.stop()
            self.rpc = None
        self.store.close()
        if self.lease is not None:
            self.lease.release()
        log.info("durable engine stopped")

    def attach(self, server: FunctionsHttpServer) -> None:
        """Serve the client binding, webhooks and admin endpoints from the devhost's server."""
        server.providers.update(self.providers)
        webhooks = management_routes(self, WEBHOOK_PREFIX, require_key=True)
        server.extra_routes[WEBHOOK_PREFIX + "/"] = _route_handler(webhooks)
        server.extra_routes[ADMIN_PREFIX + "/"] = _route_handler(admin_routes(self))

    # --- urls ----------------------------------------------------------------------------
    @property
    def rpc_base_url(self) -> str:
        assert self.rpc is not None, "the engine is not started"
        return f"{self.rpc.base_url}{RPC_PREFIX}/"

    @property
    def webhook_base_url(self) -> str:
        return self.public_base_url + WEBHOOK_PREFIX

    def _query_suffix(self) -> str:
        return urlencode({"taskHub": self.settings.task_hub, "connection": self.settings.connection_name,
                          "code": self.system_key})

    def management_urls(self, instance_id: str) -> dict[str, str]:
        segment = instance_id if instance_id == INSTANCE_PLACEHOLDER else quote(instance_id, safe="")
        base = f"{self.webhook_base_url}/instances/{segment}"
        q = self._query_suffix()
        return {
            "id": instance_id,
            "statusQueryGetUri": f"{base}?{q}",
            "sendEventPostUri": f"{base}/raiseEvent/{{eventName}}?{q}",
            "terminatePostUri": f"{base}/terminate?reason={{text}}&{q}",
            "rewindPostUri": f"{base}/rewind?reason={{text}}&{q}",
            "purgeHistoryDeleteUri": f"{base}?{q}",
            "restartPostUri": f"{base}/restart?{q}",
            "suspendPostUri": f"{base}/suspend?reason={{text}}&{q}",
            "resumePostUri": f"{base}/resume?reason={{text}}&{q}",
        }

    def request_url(self, request: Request) -> str:
        host = request.headers.get("host") or urlsplit(self.public_base_url).netloc
        return f"http://{host}{request.path}" + (f"?{urlencode(request.query)}" if request.query else "")

    def client_binding(self, binding: Any, request: Any = None) -> str:
        """The ``durableClient`` binding value: the JSON the extension gives out-of-proc workers."""
        hub = getattr(binding, "task_hub", None)
        if hub and hub != self.settings.task_hub:
            raise RuntimeError(f"the devhost runs one task hub ({self.settings.task_hub}); a client for "
                               f"task hub {hub!r} is not supported")
        code = urlencode({"code": self.system_key})
        prefix = f"{self.webhook_base_url}/orchestrators/{{functionName}}[/{{instanceId}}]"
        return json.dumps({
            "taskHubName": self.settings.task_hub,
            "connectionName": getattr(binding, "connection_name", None),
            "creationUrls": {
                "createNewInstancePostUri": f"{prefix}?{code}",
                "createAndWaitOnNewInstancePostUri":
                    f"{prefix}?timeout={{timeoutInSeconds}}&pollingInterval={{intervalInSeconds}}&{code}",
            },
            "managementUrls": self.management_urls(INSTANCE_PLACEHOLDER),
            "baseUrl": self.webhook_base_url,
            "requiredQueryStringParameters": code,
            "rpcBaseUrl": self.rpc_base_url,
            "httpBaseUrl": None,
        })

    # --- management operations -----------------------------------------------------------
    def start_new(self, name: str, instance_id: str | None, input_text: str | None) -> InstanceState:
        if name not in self.index.orchestrators:
            raise BadRequest(f"The function '{name}' doesn't exist, is disabled, or is not an orchestrator "
                             "function. Additional info: no orchestrator with this name is registered.")
        instance_id = instance_id if instance_id is not None else uuid.uuid4().hex
        _check_instance_id(instance_id)
        now = self.clock.now()
        state = InstanceState(instance_id=instance_id, name=self.index.orchestrators[name].name,
                              execution_id=uuid.uuid4().hex, status="Pending", input=input_text, created=now,
                              updated=now)
        try:
            self.store.create_instance(state)
        except InstanceExistsError as exc:
            raise Conflict(str(exc)) from exc
        log.info("instance %s (%s) scheduled", instance_id, state.name)
        self.dispatcher.notify(instance_id)
        return state

    def raise_event(self, instance_id: str, name: str, input_text: str | None) -> None:
        self.store.put_message(instance_id, Message.event(name, input_text))
        self.dispatcher.notify(instance_id)

    def terminate(self, instance_id: str, reason: str | None) -> None:
        self.store.put_message(instance_id, Message.terminate(reason))
        self.dispatcher.notify(instance_id)

    def query(self, created_from: datetime | None = None, created_to: datetime | None = None,
              statuses: set[str] | None = None, prefix: str | None = None) -> list[InstanceState]:
        out = []
        for row in self.store.projections():
            state = TaskHubStore.state_from_row(row["PartitionKey"], {**row, "HistoryLength": 0})
            if created_from and state.created < created_from:
                continue
            if created_to and state.created > created_to:
                continue
            if statuses and state.status not in statuses:
                continue
            if prefix and not state.instance_id.startswith(prefix):
                continue
            out.append(state)
        return sorted(out, key=lambda s: s.instance_id)

    def purge(self, instance_id: str) -> bool:
        return self.store.purge(instance_id)

    def purge_by(self, created_from: datetime, created_to: datetime | None, statuses: set[str] | None) -> int:
        states = self.query(created_from, created_to or self.clock.now(), statuses)
        return sum(1 for s in states if self.store.purge(s.instance_id))

    def advance_clock(self, *, seconds: float | None = None, to: datetime | None = None) -> datetime:
        if not isinstance(self.clock, ManualClock):
            raise ValueError("the clock is not manual")
        if to is not None:
            return self.clock.set(to)
        if seconds is None:
            raise ValueError("give 'seconds' or 'to'")
        return self.clock.advance(timedelta(seconds=seconds))


def _check_instance_id(instance_id: str) -> None:
    if not instance_id or not instance_id.strip():
        raise BadRequest("Instance ID must not be empty.")
    if len(instance_id) > MAX_INSTANCE_ID:
        raise BadRequest(f"Instance ID lengths must not exceed {MAX_INSTANCE_ID} characters.")
    if re.search(r"[/\\?#\x00-\x1f\x7f-\x9f]", instance_id):
        raise BadRequest(f"Instance ID '{instance_id}' contains invalid characters.")


def _container(settings: EngineSettings, name: str) -> Any:
    from azure.storage.blob import BlobServiceClient

    return BlobServiceClient.from_connection_string(settings.connection_string).get_container_client(name)


def _persistent_key(container: Any) -> str:
    """The durabletask system key, kept where the Functions host keeps its keys (a blob)."""
    blob = container.get_blob_client("devhost/host.json")
    with contextlib.suppress(ResourceExistsError):
        container.create_container()
    try:
        data = json.loads(blob.download_blob().readall())
        for key in data.get("systemKeys", []):
            if key.get("name") == SYSTEM_KEY_NAME:
                return str(key["value"])
    except ResourceNotFoundError:
        data = {}
    value = secrets.token_urlsafe(32)
    data.setdefault("systemKeys", []).append({"name": SYSTEM_KEY_NAME, "value": value})
    blob.upload_blob(json.dumps(data), overwrite=True)
    return value


def _route_handler(routes: list[Route]) -> Callable[[BaseHTTPRequestHandler], bool]:
    """Adapt stand-in routes to the devhost server's ``extra_routes`` hook."""
    def handle(raw: BaseHTTPRequestHandler) -> bool:
        split = urlsplit(raw.path)
        for method, pattern, handler in routes:
            match = pattern.fullmatch(split.path)
            if match and method == raw.command:
                length = int(raw.headers.get("Content-Length") or 0)
                body = raw.rfile.read(length) if length else b""
                request = Request(raw.command, split.path, dict(parse_qsl(split.query, keep_blank_values=True)),
                                  {k.lower(): v for k, v in raw.headers.items()}, body, match.groupdict())
                try:
                    response = handler(request)
                except Exception as exc:
                    log.exception("durable API %s %s failed", raw.command, split.path)
                    response = Response(500, {"Message": "Something went wrong while processing your request",
                                              "ExceptionMessage": str(exc)})
                _write(raw, response)
                return True
        return False
    return handle


def _write(raw: BaseHTTPRequestHandler, response: Response) -> None:
    payload = response.encode()
    raw.send_response(response.status)
    if payload or response.status != 204:
        raw.send_header("Content-Type", response.content_type)
    for name, value in response.headers.items():
        raw.send_header(name, value)
    raw.send_header("Content-Length", str(len(payload)))
    raw.end_headers()
    if raw.command != "HEAD":
        raw.wfile.write(payload)
