"""A small deployment and replica-set controller for the stand-in cluster.

Just enough of what kube-controller-manager does for the broker's verbs to behave: a deployment
gets one replica set per pod template (numbered by the ``deployment.kubernetes.io/revision``
annotation, which is what ``rollout undo`` reads), old replica sets are scaled to zero, replica
sets keep their pod count (a deleted pod comes back), and statuses are filled in so ``rollout
status`` and ``get`` show ready replicas. Pods are "running" at once; they get a few log lines.
"""

from __future__ import annotations

import copy
import random
from typing import TYPE_CHECKING, Any

from devhost.kubernetes.semantics import now_iso, template_hash

if TYPE_CHECKING:
    from devhost.kubernetes.emulator import ClusterEmulator

REVISION = "deployment.kubernetes.io/revision"


def reconcile_namespace(api: ClusterEmulator, namespace: str) -> None:
    for deployment in api.each("apps", "deployments", namespace):
        _deployment(api, deployment)
    for replica_set in api.each("apps", "replicasets", namespace):
        _replica_set(api, replica_set)
    for deployment in api.each("apps", "deployments", namespace):
        _deployment_status(api, deployment)


def owner(obj: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"],
            "uid": obj["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def owned_by(obj: dict[str, Any], uid: str) -> bool:
    return any(o.get("uid") == uid for o in obj.get("metadata", {}).get("ownerReferences") or [])


def _revision(obj: dict[str, Any]) -> int:
    return int((obj["metadata"].get("annotations") or {}).get(REVISION, "0"))


def _deployment(api: ClusterEmulator, dep: dict[str, Any]) -> None:
    meta, spec = dep["metadata"], dep.get("spec") or {}
    ns, name = meta["namespace"], meta["name"]
    template = spec.get("template") or {}
    digest = template_hash(template)
    owned = [rs for rs in api.each("apps", "replicasets", ns) if owned_by(rs, meta["uid"])]
    newest = max((_revision(rs) for rs in owned), default=0)
    replicas = spec.get("replicas", 1)
    current = next((rs for rs in owned if rs["metadata"].get("labels", {}).get("pod-template-hash") == digest), None)
    if current is None:
        pod_template = copy.deepcopy(template)
        pod_template.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = digest
        selector = dict((spec.get("selector") or {}).get("matchLabels") or {}, **{"pod-template-hash": digest})
        current = api.store("apps", "replicasets", {
            "metadata": {"name": f"{name}-{digest}", "namespace": ns, "labels": pod_template["metadata"]["labels"],
                         "annotations": {REVISION: str(newest + 1)}, "ownerReferences": [owner(dep)]},
            "spec": {"replicas": replicas, "selector": {"matchLabels": selector}, "template": pod_template}})
        record_event(api, dep, "ScalingReplicaSet", f"Scaled up replica set {name}-{digest} to {replicas}")
    else:
        changed = False
        if _revision(current) < newest:  # a rollback makes an old template the newest revision
            current["metadata"].setdefault("annotations", {})[REVISION] = str(newest + 1)
            changed = True
        if current["spec"].get("replicas") != replicas:
            verb = "up" if replicas > current["spec"].get("replicas", 0) else "down"
            record_event(api, dep, "ScalingReplicaSet",
                         f"Scaled {verb} replica set {current['metadata']['name']} to {replicas}")
            current["spec"]["replicas"] = replicas
            changed = True
        if changed:
            api.store("apps", "replicasets", current)
    for old in owned:
        if old["metadata"]["name"] != current["metadata"]["name"] and old["spec"].get("replicas"):
            old["spec"]["replicas"] = 0
            api.store("apps", "replicasets", old)
            record_event(api, dep, "ScalingReplicaSet", f"Scaled down replica set {old['metadata']['name']} to 0")


def _deployment_status(api: ClusterEmulator, dep: dict[str, Any]) -> None:
    meta, spec = dep["metadata"], dep.get("spec") or {}
    owned = [rs for rs in api.each("apps", "replicasets", meta["namespace"]) if owned_by(rs, meta["uid"])]
    if not owned:
        return
    current = max(owned, key=_revision)
    replicas = spec.get("replicas", 1)
    status = {"observedGeneration": meta.get("generation", 1), "replicas": replicas, "updatedReplicas": replicas,
              "readyReplicas": replicas, "availableReplicas": replicas,
              "conditions": [
                  {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                   "message": "Deployment has minimum availability."},
                  {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                   "message": f'ReplicaSet "{current["metadata"]["name"]}" has successfully progressed.'}]}
    annotations = dict(meta.get("annotations") or {}, **{REVISION: str(_revision(current))})
    if dep.get("status") != status or meta.get("annotations") != annotations:
        dep["status"], meta["annotations"] = status, annotations
        api.store("apps", "deployments", dep)


def _replica_set(api: ClusterEmulator, rs: dict[str, Any]) -> None:
    meta = rs["metadata"]
    ns = meta["namespace"]
    want = (rs.get("spec") or {}).get("replicas", 1)
    pods = [p for p in api.each("", "pods", ns) if owned_by(p, meta["uid"])]
    attempt = 0
    while len(pods) < want:
        rng = random.Random(f"{meta['name']}/{api.revision}/{attempt}")  # replayable, never reused
        attempt += 1
        name = f"{meta['name']}-{''.join(rng.choice('bcdfghjklmnpqrstvwxz2456789') for _ in range(5))}"
        if api.find("", "pods", ns, name):
            continue
        pods.append(_new_pod(api, rs, name, rng))
    for extra in pods[want:]:
        api.remove("", "pods", ns, extra["metadata"]["name"])
    status = {"replicas": want, "fullyLabeledReplicas": want, "readyReplicas": want, "availableReplicas": want,
              "observedGeneration": meta.get("generation", 1)}
    if rs.get("status") != status:
        rs["status"] = status
        api.store("apps", "replicasets", rs)


def _new_pod(api: ClusterEmulator, rs: dict[str, Any], name: str, rng: random.Random) -> dict[str, Any]:
    template = copy.deepcopy(rs["spec"]["template"])
    ns = rs["metadata"]["namespace"]
    nodes = api.node_names or ["node-1"]
    node = nodes[rng.randrange(len(nodes))]
    spec = dict(template.get("spec") or {}, nodeName=node)
    containers = spec.get("containers") or []
    started = now_iso()
    pod = api.store("", "pods", {
        "metadata": {"name": name, "namespace": ns, "labels": template.get("metadata", {}).get("labels", {}),
                     "ownerReferences": [owner(rs)]},
        "spec": spec,
        "status": {"phase": "Running", "podIP": f"10.244.{rng.randrange(0, 4)}.{rng.randrange(2, 250)}",
                   "hostIP": f"10.224.0.{4 + nodes.index(node)}", "startTime": started, "qosClass": "Burstable",
                   "conditions": [{"type": t, "status": "True", "lastTransitionTime": started}
                                  for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")],
                   "containerStatuses": [{"name": c["name"], "ready": True, "restartCount": 0, "started": True,
                                          "image": c.get("image", ""), "imageID": "",
                                          "containerID": f"containerd://{rng.getrandbits(128):032x}",
                                          "state": {"running": {"startedAt": started}}} for c in containers]}})
    for container in containers:
        api.logs[(ns, name, container["name"])] = access_log(rng, lines=40)
    return pod


def access_log(rng: random.Random, lines: int, span_seconds: float = 7200.0) -> list[tuple[float, str]]:
    import time

    now = time.time()
    paths = ["/", "/healthz", "/api/orders", "/api/orders/42", "/static/app.js", "/api/customers"]
    out = []
    for i in range(lines):
        stamp = now - span_seconds + span_seconds * (i + 1) / lines
        ip = f"10.244.{rng.randrange(0, 4)}.{rng.randrange(2, 250)}"
        status = rng.choice([200, 200, 200, 200, 304, 404, 500])
        out.append((stamp, f'{ip} - - "GET {rng.choice(paths)} HTTP/1.1" {status} {rng.randrange(120, 9000)}'))
    return out


def record_event(api: ClusterEmulator, obj: dict[str, Any], reason: str, message: str,
                 kind: str = "Normal", component: str = "deployment-controller") -> None:
    meta = obj["metadata"]
    stamp = now_iso()
    name = f"{meta['name']}.{random.getrandbits(64):016x}"
    api.store("", "events", {
        "metadata": {"name": name, "namespace": meta.get("namespace") or "default"},
        "involvedObject": {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "name": meta["name"],
                           "namespace": meta.get("namespace"), "uid": meta.get("uid")},
        "reason": reason, "message": message, "type": kind, "count": 1, "firstTimestamp": stamp,
        "lastTimestamp": stamp, "source": {"component": component}})
