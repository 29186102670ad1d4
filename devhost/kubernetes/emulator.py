"""kmock's ``KubernetesEmulator`` taught the API semantics the broker relies on.

kmock serves discovery (its bundled built-in resource list), stores objects with their history
and renders Kubernetes ``Status`` errors. On top of it this module adds what a real API server
does and kmock leaves out: label and field selectors on lists, typed lists, the four PATCH content
types (strategic-merge, merge, JSON patch, server-side apply with create-on-apply), ``dryRun``
that changes nothing, the ``scale`` and ``log`` subresources, garbage collection through owner
references, a small deployment/replica-set controller (so scale, rollout restart and undo behave)
and synthesized ``metrics.k8s.io`` usage for ``kubectl top``.
"""

from __future__ import annotations

import copy
import datetime as dt
import random
import time
import uuid
from collections.abc import Iterator
from typing import Any

import aiohttp.web
import attrs
import jsonpatch
import kmock
from kmock import KubernetesError, KubernetesObjectNotFoundError, KubernetesResourceNotFoundError

from devhost.kubernetes.controller import reconcile_namespace
from devhost.kubernetes.semantics import (
    BadRequestError,
    field_matches,
    matches_labels,
    merge_patch,
    now_iso,
    parse_field_selector,
    parse_label_selector,
    patch_body,
    strategic_merge,
)

METRICS_GROUP = "metrics.k8s.io"


class ConflictError(KubernetesError):
    def __init__(self, message: str) -> None:
        super().__init__(status=409, reason="Conflict", message=message, details={})


@attrs.define(kw_only=True)
class ClusterEmulator(kmock.KubernetesEmulator):
    """The API server of the stand-in cluster; the controller runs after every change."""

    logs: dict[tuple[str, str, str], list[tuple[float, str]]] = attrs.field(factory=dict)
    previous_logs: dict[tuple[str, str, str], list[tuple[float, str]]] = attrs.field(factory=dict)
    node_names: list[str] = attrs.field(factory=list)
    metrics: bool = True
    _revision: list[int] = attrs.field(factory=lambda: [1000])

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.fallback["get /version/"] << self._serve_server_version  # the typed client's VersionApi
        self.resources.load_bundled()
        if not self.metrics:
            for key in [k for k in self.resources if k.group == METRICS_GROUP]:
                del self.resources[key]

    @property
    def revision(self) -> int:
        """The last resourceVersion handed out."""
        return self._revision[0]

    # --- object access ---
    def info(self, res: kmock.resource) -> Any:
        if res not in self.resources:
            raise KubernetesResourceNotFoundError()
        return self.resources[res]

    def _key_resource(self, group: str, plural: str) -> kmock.resource:
        """The stored key for a resource: objects are stored under the group's first served version."""
        versions = {r.version for r in self.resources if r.group == group and r.plural == plural}
        if not versions:
            raise KubernetesResourceNotFoundError()
        stable = max(versions, key=lambda v: ("alpha" not in v and "beta" not in v, v))
        return kmock.resource(group, stable, plural)

    def find(self, group: str, plural: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        key = (self._key_resource(group, plural), namespace, name)
        if key in self.objects and not self.objects[key].deleted:
            return copy.deepcopy(self.objects[key].raw)
        return None

    def each(self, group: str, plural: str, namespace: str | None = None) -> Iterator[dict[str, Any]]:
        res = self._key_resource(group, plural)
        for (r, ns, _), obj in sorted(self.objects.items(), key=lambda kv: (kv[0][1] or "", kv[0][2])):
            if r == res and not obj.deleted and (namespace is None or ns == namespace):
                yield copy.deepcopy(obj.raw)

    def store(self, group: str, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create or replace an object, keeping the metadata an API server maintains."""
        res = self._key_resource(group, plural)
        info = self.resources[res]
        meta = body.setdefault("metadata", {})
        namespace = meta.get("namespace") if info.namespaced else None
        if not info.namespaced:
            meta.pop("namespace", None)
        key = (res, namespace, meta["name"])
        current = self.objects[key].raw if key in self.objects and not self.objects[key].deleted else None
        body.setdefault("apiVersion", f"{group}/{res.version}" if group else res.version)
        body.setdefault("kind", info.kind)
        meta.setdefault("uid", (current or {}).get("metadata", {}).get("uid") or str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", (current or {}).get("metadata", {}).get("creationTimestamp") or now_iso())
        old_generation = (current or {}).get("metadata", {}).get("generation", 0)
        spec_changed = current is None or current.get("spec") != body.get("spec")
        meta["generation"] = old_generation + 1 if spec_changed else old_generation or 1
        self._revision[0] += 1
        meta["resourceVersion"] = str(self._revision[0])
        if key in self.objects:
            if self.objects[key].deleted:
                self.objects[key].create(body)
            else:
                self.objects[key].history.append(body)
        else:
            self.objects[key] = body
        return copy.deepcopy(body)

    def remove(self, group: str, plural: str, namespace: str | None, name: str, orphan: bool = False) -> None:
        key = (self._key_resource(group, plural), namespace, name)
        obj = self.objects[key]
        uid = obj.raw["metadata"]["uid"]
        obj.delete()
        if not orphan:
            self._collect_garbage(uid)

    def _collect_garbage(self, owner_uid: str) -> None:
        for (res, ns, name), obj in list(self.objects.items()):
            if obj.deleted:
                continue
            owners = obj.raw.get("metadata", {}).get("ownerReferences") or []
            if any(o.get("uid") == owner_uid for o in owners):
                self.remove(res.group, res.plural, ns, name)

    # --- request handling ---
    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        res = request.resource
        if res is None or res.plural is None or res.version is None:
            return await super()._handle(request)
        info = self.info(res)
        method = request.method.value
        sub = request.subresource
        if method == "GET" and request.name is None and request.params.get("watch") != "true":
            return self._json(self._list(request, res, info))
        if method == "GET" and request.name is not None:
            obj = self._get(res, request)
            if sub == "log":
                return aiohttp.web.Response(text=self._log(request), content_type="text/plain")
            if sub == "scale":
                return self._json(_scale_of(obj))
            if sub in (None, "status"):
                return self._json(obj)
        if method == "PATCH" and request.name is not None:
            return self._json(self._patch(request, res, info))
        if method == "DELETE" and request.name is not None:
            return self._json(self._delete(request, res))
        if method == "POST" and request.name is None and sub is None:
            return self._json(self._create(request, res, info), status=201)
        return await super()._handle(request)

    @staticmethod
    def _json(body: Any, status: int = 200) -> aiohttp.web.Response:
        return aiohttp.web.json_response(body, status=status)

    def _get(self, res: kmock.resource, request: kmock.Request) -> dict[str, Any]:
        if res.group == METRICS_GROUP:
            found = [m for m in self._metrics(res.plural, request.namespace) if m["metadata"]["name"] == request.name]
            if not found:
                raise KubernetesObjectNotFoundError()
            return found[0]
        obj = self.find(res.group or "", res.plural or "", request.namespace, request.name or "")
        if obj is None:
            raise KubernetesError(status=404, reason="NotFound", details={"name": request.name, "kind": res.plural},
                                  message=f'{res.plural} "{request.name}" not found')
        return obj

    def _list(self, request: kmock.Request, res: kmock.resource, info: Any) -> dict[str, Any]:
        if res.group == METRICS_GROUP:
            items = list(self._metrics(res.plural or "", request.namespace))
        else:
            items = list(self.each(res.group or "", res.plural or "", request.namespace))
        labels = request.params.get("labelSelector")
        fields = request.params.get("fieldSelector")
        if labels:
            requirements = parse_label_selector(labels)
            items = [i for i in items if matches_labels(i.get("metadata", {}).get("labels") or {}, requirements)]
        if fields:
            requirements = parse_field_selector(fields)
            items = [i for i in items if all(field_matches(i, *r) for r in requirements)]
        group_version = f"{res.group}/{res.version}" if res.group else res.version
        return {"apiVersion": group_version, "kind": f"{info.kind}List",
                "metadata": {"resourceVersion": str(self._revision[0])}, "items": items}

    def _create(self, request: kmock.Request, res: kmock.resource, info: Any) -> dict[str, Any]:
        body = request.data if isinstance(request.data, dict) else None
        if body is None or not body.get("metadata", {}).get("name"):
            raise BadRequestError("the object needs metadata.name")
        if info.namespaced:
            body["metadata"]["namespace"] = request.namespace
        if self.find(res.group or "", res.plural or "", request.namespace, body["metadata"]["name"]):
            raise ConflictError(f'{res.plural} "{body["metadata"]["name"]}" already exists')
        if "dryRun" in request.params:
            return body
        created = self.store(res.group or "", res.plural or "", body)
        self.reconcile(request.namespace)
        return created

    def _patch(self, request: kmock.Request, res: kmock.resource, info: Any) -> dict[str, Any]:
        group, plural = res.group or "", res.plural or ""
        content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip()
        current = self.find(group, plural, request.namespace, request.name or "")
        body = patch_body(request, content_type)
        sub = request.subresource
        if current is None and content_type != "application/apply-patch+yaml":
            raise KubernetesError(status=404, reason="NotFound", details={"name": request.name},
                                  message=f'{plural} "{request.name}" not found')
        if sub == "scale":
            assert current is not None
            replicas = (body.get("spec") or {}).get("replicas")
            if not isinstance(replicas, int) or replicas < 0:
                raise BadRequestError("spec.replicas must be a non-negative integer")
            updated = dict(current, spec=dict(current.get("spec") or {}, replicas=replicas))
        elif sub not in (None, "status"):
            raise KubernetesError(status=405, reason="MethodNotAllowed", message=f"cannot patch {sub}")
        elif content_type == "application/apply-patch+yaml":
            updated = self._apply(request, res, info, current, body)
        elif content_type == "application/json-patch+json":
            try:
                updated = jsonpatch.apply_patch(current, body)
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
                raise BadRequestError(f"the JSON patch does not apply: {exc}") from None
        elif content_type == "application/merge-patch+json":
            updated = merge_patch(current, body)
        elif content_type == "application/strategic-merge-patch+json":
            updated = strategic_merge(current, body)
        else:
            raise KubernetesError(status=415, reason="UnsupportedMediaType",
                                  message=f"the body of the request was in an unknown format: {content_type}")
        if sub == "status" and current is not None:
            updated = dict(current, status=updated.get("status"))
        name = updated.get("metadata", {}).get("name")
        if name != request.name:
            raise BadRequestError("the name of the object does not match the name on the URL")
        if info.namespaced:
            updated["metadata"]["namespace"] = request.namespace
        if "dryRun" in request.params:
            result = copy.deepcopy(updated)
            result.setdefault("metadata", {}).setdefault("uid", str(uuid.uuid4()))
            return _scale_of(result) if sub == "scale" else result
        stored = self.store(group, plural, updated)
        self.reconcile(request.namespace)
        stored = self.find(group, plural, request.namespace, request.name or "") or stored
        return _scale_of(stored) if sub == "scale" else stored

    def _apply(self, request: kmock.Request, res: kmock.resource, info: Any, current: dict[str, Any] | None,
               body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or not body.get("kind") or not body.get("apiVersion"):
            raise BadRequestError("an apply patch needs apiVersion and kind")
        if "fieldManager" not in request.params:
            raise BadRequestError("PATCH with apply requires a fieldManager")
        if body["kind"] != info.kind:
            raise BadRequestError(f"the kind {body['kind']} does not match the resource {res.plural}")
        if current is None:
            return copy.deepcopy(body)
        return strategic_merge(current, body)

    def _delete(self, request: kmock.Request, res: kmock.resource) -> dict[str, Any]:
        group, plural = res.group or "", res.plural or ""
        current = self.find(group, plural, request.namespace, request.name or "")
        if current is None:
            raise KubernetesError(status=404, reason="NotFound", details={"name": request.name},
                                  message=f'{plural} "{request.name}" not found')
        if "dryRun" in request.params:
            return current
        body = request.data if isinstance(request.data, dict) else {}
        policy = request.params.get("propagationPolicy") or body.get("propagationPolicy") or "Background"
        self.remove(group, plural, request.namespace, request.name or "", orphan=policy == "Orphan")
        if group == "" and plural == "namespaces":
            for (r, ns, name), obj in list(self.objects.items()):
                if ns == request.name and not obj.deleted:
                    self.remove(r.group, r.plural, ns, name)
        self.reconcile(request.namespace)
        return current

    def _log(self, request: kmock.Request) -> str:
        pod = self._get(kmock.resource("", "v1", "pods"), request)
        containers = [c["name"] for c in pod.get("spec", {}).get("containers", [])]
        container = request.params.get("container") or (containers[0] if len(containers) == 1 else None)
        if container is None:
            raise BadRequestError(f"a container name must be specified for pod {request.name}, choose one of: "
                                  f"{containers}")
        if container not in containers:
            raise BadRequestError(f"container {container} is not valid for pod {request.name}")
        key = (request.namespace or "", request.name or "", container)
        source = self.previous_logs if request.params.get("previous") == "true" else self.logs
        if request.params.get("previous") == "true" and key not in source:
            raise BadRequestError(f'previous terminated container "{container}" in pod "{request.name}" not found')
        lines = source.get(key, [])
        if "sinceSeconds" in request.params:
            cutoff = time.time() - int(request.params["sinceSeconds"])
            lines = [entry for entry in lines if entry[0] >= cutoff]
        if "tailLines" in request.params:
            tail = int(request.params["tailLines"])
            lines = lines[-tail:] if tail > 0 else []
        stamp = request.params.get("timestamps") == "true"
        text = "".join((f"{dt.datetime.fromtimestamp(t, dt.UTC).isoformat()} " if stamp else "") + line + "\n"
                       for t, line in lines)
        if "limitBytes" in request.params:
            text = text[: int(request.params["limitBytes"])]
        return text

    def _metrics(self, plural: str, namespace: str | None) -> Iterator[dict[str, Any]]:
        rng = random.Random(7)
        stamp = now_iso()
        if plural == "nodes":
            for node in self.each("", "nodes"):
                yield {"apiVersion": f"{METRICS_GROUP}/v1beta1", "kind": "NodeMetrics", "timestamp": stamp,
                       "window": "10s", "metadata": {"name": node["metadata"]["name"]},
                       "usage": {"cpu": f"{rng.randrange(150, 900)}m", "memory": f"{rng.randrange(1800, 5200)}Mi"}}
            return
        for pod in self.each("", "pods", namespace):
            meta = pod["metadata"]
            yield {"apiVersion": f"{METRICS_GROUP}/v1beta1", "kind": "PodMetrics", "timestamp": stamp,
                   "window": "10s", "metadata": {"name": meta["name"], "namespace": meta["namespace"],
                                                 "labels": meta.get("labels", {})},
                   "containers": [{"name": c["name"], "usage": {"cpu": f"{rng.randrange(1, 40)}m",
                                                                "memory": f"{rng.randrange(20, 120)}Mi"}}
                                  for c in pod.get("spec", {}).get("containers", [])]}

    # --- the controller ---
    def reconcile(self, namespace: str | None) -> None:
        """Deployments own replica sets (one per pod template, numbered revisions); replica sets own pods."""
        if namespace is None:
            return

        reconcile_namespace(self, namespace)


def _scale_of(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata", {})
    return {"apiVersion": "autoscaling/v1", "kind": "Scale",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                         if k in meta},
            "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
            "status": {"replicas": (obj.get("status") or {}).get("replicas", 0),
                       "selector": ",".join(f"{k}={v}" for k, v in
                                            ((obj.get("spec") or {}).get("selector") or {})
                                            .get("matchLabels", {}).items())}}
