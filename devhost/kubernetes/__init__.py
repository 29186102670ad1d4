"""A Kubernetes API stand-in over HTTPS: kmock's emulator (``emulator.py``) behind a front door that
checks bearer tokens as AKS does (an Entra ID token for the AKS server application, or a static
service-account token), plus pod exec over a ``v4.channel.k8s.io`` websocket (``exec.py``).

It runs on its own event loop in a background thread, so the dev stack and the tests can start it
next to everything else; the broker's engine talks to it with the real ``kubernetes`` client,
exactly as it would talk to AKS.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import aiohttp.web
import jwt

from devhost.kubernetes.container import Container, container_view
from devhost.kubernetes.emulator import ClusterEmulator
from devhost.kubernetes.exec import EXEC_PATH, serve_exec

_RESOURCE_PATH = re.compile(r"^/api/v1/(?:namespaces/(?P<namespace>[^/]+)/)?(?P<resource>[a-z]+)(?:/(?P<name>[^/]+))?$")
"""A core-group resource path: ``/api/v1/namespaces/demo/secrets/db-credentials``, ``/api/v1/secrets``."""

AKS_SERVER_APP = "6dae42f8-4368-4678-94ff-3960e28e3630"
"""The application id of the AKS AAD server: Entra tokens for AKS carry it as their audience."""

T = TypeVar("T")


class TokenCheck:
    """Accepts Entra tokens for the AKS server app from the listed issuers, or static tokens."""

    def __init__(self, *, jwks_uri: str = "", issuers: tuple[str, ...] = (), audience: str = AKS_SERVER_APP,
                 tokens: set[str] | None = None) -> None:
        self._jwks = jwt.PyJWKClient(jwks_uri, cache_keys=True, lifespan=300) if jwks_uri else None
        self.issuers, self.audience = issuers, audience
        self.tokens = set(tokens or ())

    def allows(self, token: str) -> bool:
        if token in self.tokens:
            return True
        if self._jwks is None:
            return False
        try:
            key = self._jwks.get_signing_key_from_jwt(token)
            jwt.decode(token, key.key, algorithms=["RS256", "ES256"], audience=self.audience,
                       issuer=list(self.issuers), options={"require": ["exp", "iss", "aud"]})
        except jwt.PyJWTError:
            return False
        return True


class KubernetesStandIn:
    def __init__(self, tls: ssl.SSLContext | None, tokens: TokenCheck, *, port: int = 0, metrics: bool = True,
                 host: str = "127.0.0.1") -> None:
        self.tls, self.tokens, self.port, self.host = tls, tokens, port, host
        self.emulator = ClusterEmulator(metrics=metrics)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: aiohttp.web.ServerRunner | None = None
        self.refused = 0  # requests turned away for want of a valid token
        self.served = 0  # authenticated requests (API calls and exec streams)
        self.changes = 0  # of those, the ones that can change the cluster: writes that are not dry runs, exec
        self.dry_runs = 0  # writes sent with dryRun (what approvers are shown), which change nothing
        self.forbidden: set[tuple[str, str | None, str | None, tuple[str, ...]]] = set()  # see forbid()
        self._started: dict[tuple[str, str], dict[str, str]] = {}  # (pod uid, container) -> env at start

    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    # --- lifecycle ---
    def start(self) -> KubernetesStandIn:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="kubernetes-stand-in", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(15)
        return self

    async def _start(self) -> None:
        await self.emulator.__aenter__()
        self._runner = aiohttp.web.ServerRunner(aiohttp.web.Server(self._handle), handle_signals=False,
                                                shutdown_timeout=1.0)
        await self._runner.setup()
        site = aiohttp.web.TCPSite(self._runner, self.host, self.port, ssl_context=self.tls)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def stop(self) -> None:
        if self._loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread:
                self._thread.join(timeout=5)
            self._loop.close()
            self._loop = None

    async def _stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()
        await self.emulator.__aexit__(None, None, None)

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the stand-in's loop (to seed or inspect objects safely)."""
        assert self._loop is not None, "start the stand-in first"

        async def call() -> T:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(15)

    # --- the front door ---
    async def _handle(self, request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        header = request.headers.get("Authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else ""
        allowed = bool(token) and await asyncio.get_running_loop().run_in_executor(None, self.tokens.allows, token)
        if not allowed:
            self.refused += 1
            return aiohttp.web.json_response({"kind": "Status", "apiVersion": "v1", "metadata": {},
                                              "status": "Failure", "message": "Unauthorized",
                                              "reason": "Unauthorized", "code": 401}, status=401)
        self.served += 1
        match = EXEC_PATH.match(request.path)
        if match or (request.method not in ("GET", "HEAD", "OPTIONS") and "dryRun" not in request.query):
            self.changes += 1
        elif request.method not in ("GET", "HEAD", "OPTIONS"):
            self.dry_runs += 1
        if match and request.headers.get("Upgrade", "").lower() == "websocket":
            ns, name = match["namespace"], match["name"]
            pod = self.emulator.find("", "pods", ns, name)
            if pod is None:
                return aiohttp.web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                                  "message": f'pods "{name}" not found', "reason": "NotFound",
                                                  "code": 404}, status=404)
            return await serve_exec(request, pod, lambda c: self._container(pod, c))
        refusal = self._forbidden(request)
        if refusal is not None:
            return refusal
        return await self.emulator(request)

    def _container(self, pod: dict[str, Any], name: str) -> Container:
        """The container as the kubelet runs it: the environment is fixed when it starts (here: at its
        first exec; a rotated Secret does not change it), mounted Secret files follow the Secret."""
        view = container_view(pod, name, lambda plural, ns, obj: self.emulator.find("", plural, ns, obj))
        key = (pod["metadata"].get("uid", pod["metadata"]["name"]), name)
        view.env = self._started.setdefault(key, view.env)
        return view

    # --- RBAC, as little as the tests need ---
    def forbid(self, resource: str, namespace: str | None = None, name: str | None = None,
               verbs: tuple[str, ...] = ("get", "list")) -> None:
        """Refuse reads (get, list, watch) of ``resource`` (optionally in one namespace, or one object)
        with the API server's 403, as RBAC does for an identity without the verb. A ``name`` rule
        (RBAC ``resourceNames``) refuses ``get`` of that object; lists stay refused only by a rule
        without a name, as in RBAC, where ``resourceNames`` cannot grant or refuse a list. ``verbs``:
        refuse only ``list`` (an identity granted ``get`` on named Secrets), or only ``get``."""
        self.forbidden.add((resource, namespace, name, verbs))

    def _forbidden(self, request: aiohttp.web.BaseRequest) -> aiohttp.web.Response | None:
        if request.method != "GET" or not self.forbidden:
            return None
        m = _RESOURCE_PATH.match(request.path)
        if m is None:
            return None
        resource, ns, name = m["resource"], m["namespace"], m["name"]
        verb = "get" if name else "list"
        for rule_resource, rule_ns, rule_name, verbs in self.forbidden:
            if rule_resource == resource and rule_ns in (None, ns) and rule_name in (None, name) and verb in verbs:
                where = f' in the namespace "{ns}"' if ns else " at the cluster scope"
                subject = f'{resource} "{name}"' if name else resource
                message = (f'{subject} is forbidden: User "broker" cannot {verb} resource "{resource}" '
                           f'in API group ""{where}')
                return aiohttp.web.json_response({"kind": "Status", "apiVersion": "v1", "metadata": {},
                                                  "status": "Failure", "message": message,
                                                  "reason": "Forbidden", "details": {"kind": resource},
                                                  "code": 403}, status=403)
        return None


def start_demo_cluster(tls: ssl.SSLContext, *, jwks_uri: str, issuers: tuple[str, ...], port: int = 0,
                       tokens: set[str] | None = None) -> KubernetesStandIn:
    """The dev stack's cluster: HTTPS, Entra tokens for AKS from the dev issuer, the demo objects."""
    from devhost.kubernetes.demo import seed_demo_cluster

    standin = KubernetesStandIn(tls, TokenCheck(jwks_uri=jwks_uri, issuers=issuers, tokens=tokens), port=port)
    standin.start()
    try:
        standin.call(seed_demo_cluster, standin.emulator)
    except BaseException:
        standin.stop()
        raise
    return standin


def catalog_target(standin: KubernetesStandIn, ca_pem: bytes) -> dict[str, Any]:
    """The ``demo-k8s`` catalog entry: reached with the broker's managed identity, like AKS with Entra ID."""
    import base64

    return {
        "engine": "kubernetes",
        "description": "Demo cluster: namespace demo, deployment web, Secret db-credentials (kmock stand-in)",
        "labels": {"env": "dev", "kind": "aks"},
        "read_only": False,
        "credential": {"source": "managed-identity", "scope": f"{AKS_SERVER_APP}/.default"},
        "connection": {"server": standin.base_url, "certificate_authority_data": base64.b64encode(ca_pem).decode()},
    }
