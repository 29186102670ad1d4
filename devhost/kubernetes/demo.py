"""The demo cluster behind the ``demo-k8s`` target: namespace ``demo`` with deployment ``web``
(3 pods with logs), its service and config map, and the Secret ``db-credentials`` whose password
must never leave the broker, neither as text nor as base64 (the pods see it as ``DATABASE_PASSWORD``
and as the file ``/etc/secret/password``), ``web-api`` (the pods' environment through ``envFrom``)
and ``backup-credentials`` (referenced by no pod); ``kube-system`` runs coredns."""

from __future__ import annotations

import base64
import json
import random
from typing import Any

from devhost.kubernetes.controller import access_log, record_event
from devhost.kubernetes.emulator import ClusterEmulator

DEMO_PASSWORD = "S3cr3t-demo-password"
DEMO_API_KEY = "pay-demo-7Hq2xVw9LmZ3"
"""In Secret ``web-api``, which the web pods take whole as environment (``envFrom``)."""
DEMO_BACKUP_KEY = "bk-demo-unreferenced-Qa81"
"""In Secret ``backup-credentials``, which no pod references: masked because the broker may read it."""
NODES = ["aks-nodepool1-31415926-vmss000000", "aks-nodepool1-31415926-vmss000001"]


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def seed_demo_cluster(api: ClusterEmulator) -> None:
    """Create the demo objects (idempotent: an existing cluster is left as it is)."""
    if api.find("", "namespaces", None, "demo"):
        return
    api.node_names[:] = NODES
    for i, node in enumerate(NODES):
        api.store("", "nodes", {
            "metadata": {"name": node, "labels": {"kubernetes.io/hostname": node, "agentpool": "nodepool1",
                                                  "kubernetes.io/os": "linux",
                                                  "node.kubernetes.io/instance-type": "Standard_D4s_v5"}},
            "spec": {"providerID": f"azure:///subscriptions/0000/resourceGroups/mc_demo/providers/"
                                   f"Microsoft.Compute/virtualMachineScaleSets/aks-nodepool1/virtualMachines/{i}"},
            "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                       "message": "kubelet is posting ready status"}],
                       "addresses": [{"type": "InternalIP", "address": f"10.224.0.{4 + i}"},
                                     {"type": "Hostname", "address": node}],
                       "capacity": {"cpu": "4", "memory": "16374584Ki", "pods": "110"},
                       "allocatable": {"cpu": "3860m", "memory": "12880696Ki", "pods": "110"},
                       "nodeInfo": {"kubeletVersion": "v1.31.2", "osImage": "Ubuntu 22.04.5 LTS",
                                    "kernelVersion": "5.15.0-1074-azure",
                                    "containerRuntimeVersion": "containerd://1.7.23-1",
                                    "architecture": "amd64", "operatingSystem": "linux"}}})
    for ns in ("default", "kube-system", "demo"):
        api.store("", "namespaces", {"metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}},
                                     "status": {"phase": "Active"}})
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
              "metadata": {"name": "db-credentials", "namespace": "demo", "labels": {"app": "web"}},
              "data": {"username": _b64("web"), "password": _b64(DEMO_PASSWORD)}}
    applied = json.dumps(secret, separators=(",", ":"))
    secret["metadata"]["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration": applied}
    api.store("", "secrets", secret)
    api.store("", "secrets", {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                              "metadata": {"name": "web-api", "namespace": "demo", "labels": {"app": "web"}},
                              "data": {"PAYMENT_API_KEY": _b64(DEMO_API_KEY)}})
    api.store("", "secrets", {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                              "metadata": {"name": "backup-credentials", "namespace": "demo"},
                              "data": {"access-key": _b64(DEMO_BACKUP_KEY)}})
    api.store("", "configmaps", {
        "metadata": {"name": "web-config", "namespace": "demo", "labels": {"app": "web"}},
        "data": {"LOG_LEVEL": "info", "FEATURE_FLAGS": "checkout-v2=true",
                 "DATABASE_URL": "postgres://web:cm-demo-pass@db.demo.svc.cluster.local:5432/app",
                 "support_contact": "oncall@contoso.com"}})
    api.store("", "services", {
        "metadata": {"name": "web", "namespace": "demo", "labels": {"app": "web"}},
        "spec": {"type": "ClusterIP", "clusterIP": "10.0.142.17", "selector": {"app": "web"},
                 "ports": [{"name": "http", "port": 80, "targetPort": 80, "protocol": "TCP"}]}})
    api.store("apps", "deployments", _deployment("demo", "web", 3, "nginx:1.27", {"app": "web"}, env=[
        {"name": "LOG_LEVEL", "valueFrom": {"configMapKeyRef": {"name": "web-config", "key": "LOG_LEVEL"}}},
        {"name": "DATABASE_HOST", "value": "db.demo.svc.cluster.local"},
        {"name": "DATABASE_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db-credentials", "key": "password"}}},
    ], env_from=[{"secretRef": {"name": "web-api"}}],
        mounts={"db-credentials": "/etc/secret"}))
    api.store("apps", "deployments", _deployment("kube-system", "coredns", 2, "mcr.microsoft.com/oss/kubernetes/"
                                                 "coredns:v1.11.3", {"k8s-app": "kube-dns"}))
    api.reconcile("demo")
    api.reconcile("kube-system")
    _demo_logs(api)


def _deployment(ns: str, name: str, replicas: int, image: str, labels: dict[str, str],
                env: list[dict[str, Any]] | None = None, env_from: list[dict[str, Any]] | None = None,
                mounts: dict[str, str] | None = None) -> dict[str, Any]:
    """A deployment; ``mounts`` maps Secret names to where their files appear in the container."""
    container: dict[str, Any] = {"name": name, "image": image, "ports": [{"containerPort": 80, "protocol": "TCP"}],
                                 "resources": {"requests": {"cpu": "50m", "memory": "64Mi"},
                                               "limits": {"memory": "128Mi"}}}
    if env:
        container["env"] = env
    if env_from:
        container["envFrom"] = env_from
    pod_spec: dict[str, Any] = {"containers": [container]}
    if mounts:
        container["volumeMounts"] = [{"name": secret, "mountPath": path, "readOnly": True}
                                     for secret, path in mounts.items()]
        pod_spec["volumes"] = [{"name": secret, "secret": {"secretName": secret}} for secret in mounts]
    return {"metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "strategy": {"type": "RollingUpdate",
                                  "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                     "template": {"metadata": {"labels": labels}, "spec": pod_spec}}}


def _demo_logs(api: ClusterEmulator) -> None:
    """The first web pod logs a connection string and a key (masked on the way out) and has restarted once."""
    # "first" by name, as a reader of ``kubectl get pods -l app=web`` sees them (the names' suffixes
    # are random, so the store's insertion order is not the listing's order)
    pods = sorted((p for p in api.each("", "pods", "demo") if p["metadata"].get("labels", {}).get("app") == "web"),
                  key=lambda p: p["metadata"]["name"])
    first = pods[0]
    name = first["metadata"]["name"]
    key = ("demo", name, "web")
    lines = api.logs[key]
    stamp = lines[-1][0]
    lines += [(stamp + 1, f"connecting to postgres://web:{DEMO_PASSWORD}@db.demo.svc.cluster.local:5432/app"),
              (stamp + 2, "payment provider configured with api_key=sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
              (stamp + 3, "ready: serving on :80")]
    api.previous_logs[key] = [*access_log(random.Random(3), 5), (stamp - 600, "fatal: out of memory (limit 128Mi)")]
    first["status"]["containerStatuses"][0]["restartCount"] = 1
    first["status"]["containerStatuses"][0]["lastState"] = {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}
    api.store("", "pods", first)
    for reason, message in [("Scheduled", f"Successfully assigned demo/{name} to {first['spec']['nodeName']}"),
                            ("Pulled", 'Container image "nginx:1.27" already present on machine'),
                            ("Started", "Started container web")]:
        record_event(api, first, reason, message, component="kubelet")
