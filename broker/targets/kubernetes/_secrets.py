"""The Secret values a command's output could carry, for known-plaintext masking
(``broker.masking.known``).

* Before ``exec`` and ``logs``, the Secrets the pod references (``env[].valueFrom.secretKeyRef``,
  ``envFrom[].secretRef``, ``secret`` volumes and ``secret`` sources of projected volumes, in every
  container list) are read fresh. If one cannot be read (the broker's RBAC, a deleted Secret whose
  value a running container still holds) the command does not run: ``kubernetes_secrets_unreadable``.
  Answering without masking would hand out what the container holds.
* For every command, every Secret of the namespace that the broker may list, cached for
  ``CACHE_SECONDS`` per target and namespace (all namespaces for ``-A`` and cluster-scoped types).
  A namespace whose Secrets the broker may not list contributes nothing (the broker cannot know
  them, and its RBAC is the operator's choice); any other failure fails the command.

Values seen before are remembered (``HISTORY`` per Secret): a container's environment keeps the value
it started with after the Secret is rotated, so the old value is masked too, as long as this broker
instance saw it. These reads are the broker's own, for masking: they are not in ``outcome.operations``.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from kubernetes.client.exceptions import ApiException

from broker.masking.known import KnownValues, known_plaintext
from broker.problems import CommandFailed
from broker.targets.kubernetes._context import Ctx
from broker.targets.kubernetes._errors import api_error

CACHE_SECONDS = 30.0
HISTORY = 4
"""Value sets remembered per Secret (the current one and the last three)."""
_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")


def referenced_secrets(pod: dict[str, Any]) -> set[str]:
    """The names of the Secrets a pod's containers see as env vars or files."""
    spec = pod.get("spec") or {}
    names: set[str] = set()
    for key in _CONTAINER_LISTS:
        for container in spec.get(key) or []:
            for item in container.get("env") or []:
                ref = (item.get("valueFrom") or {}).get("secretKeyRef") or {}
                if ref.get("name"):
                    names.add(ref["name"])
            for source in container.get("envFrom") or []:
                ref = source.get("secretRef") or {}
                if ref.get("name"):
                    names.add(ref["name"])
    for volume in spec.get("volumes") or []:
        secret = volume.get("secret") or {}
        if secret.get("secretName"):
            names.add(secret["secretName"])
        for source in (volume.get("projected") or {}).get("sources") or []:
            ref = source.get("secret") or {}
            if ref.get("name"):
                names.add(ref["name"])
    return names


def _values(secret: dict[str, Any]) -> set[bytes]:
    out: set[bytes] = set()
    for raw in (secret.get("data") or {}).values():
        if isinstance(raw, str):
            try:
                out.add(base64.b64decode(raw, validate=True))
            except (binascii.Error, ValueError):
                out.add(raw.encode())
    for text in (secret.get("stringData") or {}).values():
        if isinstance(text, str):
            out.add(text.encode())
    return out


class SecretValues:
    """Per engine: the namespaces' Secret values (cached briefly) and the pods' (read fresh)."""

    def __init__(self, *, ttl: float = CACHE_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl, self._clock = ttl, clock
        self._cache: dict[tuple[str, str | None], tuple[float, frozenset[bytes]]] = {}
        self._seen: dict[tuple[str, str, str], list[frozenset[bytes]]] = {}
        self._lock = threading.Lock()

    def for_namespace(self, ctx: Ctx, namespace: str | None, *, streams: bool = False) -> KnownValues:
        return KnownValues(known_plaintext(self._namespace(ctx, namespace)), streams)

    def for_pods(self, ctx: Ctx, namespace: str, pods: Iterable[dict[str, Any]], *,
                 streams: bool = False) -> KnownValues:
        """The pods' referenced Secrets, read now (fail closed), with the namespace's."""
        values = set(self._namespace(ctx, namespace))
        for name in sorted({n for pod in pods for n in referenced_secrets(pod)}):
            values |= self._remember(ctx.target.name, namespace, name, _values(self._read(ctx, namespace, name)))
        return KnownValues(known_plaintext(frozenset(values)), streams)

    def _remember(self, target: str, namespace: str, name: str, values: set[bytes]) -> set[bytes]:
        """``values`` with the values this Secret had before (a running container may still hold them)."""
        key, current = (target, namespace, name), frozenset(values)
        with self._lock:
            history = self._seen.setdefault(key, [])
            if current not in history:
                history.append(current)
                del history[:-HISTORY]
            return set().union(*history)

    def forget(self) -> None:
        with self._lock:
            self._cache.clear()

    def _namespace(self, ctx: Ctx, namespace: str | None) -> frozenset[bytes]:
        key = (ctx.target.name, namespace)
        now = self._clock()
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        core = ctx.cluster.core
        try:
            if namespace is None:
                listing = core.list_secret_for_all_namespaces(_preload_content=False, _request_timeout=ctx.timeout)
            else:
                listing = core.list_namespaced_secret(namespace, _preload_content=False,
                                                      _request_timeout=ctx.timeout)
            items = _json(listing).get("items") or []
        except ApiException as exc:
            if exc.status != 403:
                raise api_error(exc, ctx.target.name) from exc
            items = []  # the broker may not list them: it cannot know them either
        except Exception as exc:
            raise api_error(exc, ctx.target.name) from exc
        values = frozenset(v for item in items for v in self._remember(
            ctx.target.name, (item.get("metadata") or {}).get("namespace") or namespace or "",
            (item.get("metadata") or {}).get("name") or "", _values(item)))
        with self._lock:
            self._cache[key] = (now + self._ttl, values)
        return values

    @staticmethod
    def _read(ctx: Ctx, namespace: str, name: str) -> dict[str, Any]:
        try:
            return _json(ctx.cluster.core.read_namespaced_secret(name, namespace, _preload_content=False,
                                                                 _request_timeout=ctx.timeout))
        except ApiException as exc:
            if exc.status in (403, 404):
                why = {403: "does not let the broker read it",
                       404: "does not have it (a running container may still hold its old value)"}[exc.status]
                raise CommandFailed(
                    f'The pod references Secret "{name}" in {namespace}, and the cluster {why}: its values '
                    "could not be masked, so the command did not run.", code="kubernetes_secrets_unreadable",
                    extra={"secret": name, "namespace": namespace}) from exc
            raise api_error(exc, ctx.target.name) from exc
        except Exception as exc:
            raise api_error(exc, ctx.target.name) from exc


def _json(response: Any) -> dict[str, Any]:
    data = response.data  # urllib3's response (``_preload_content=False``): the JSON as the server sent it
    if isinstance(data, bytes):
        data = data.decode("utf-8", "replace")
    parsed = json.loads(data) if isinstance(data, str) and data else {}
    return parsed if isinstance(parsed, dict) else {}
