"""kubectl's familiar columns, computed from the objects (the same columns for every cluster).

``get`` without ``-o`` prints the default columns, ``-o wide`` adds kubectl's wide ones; kinds
the table does not know get NAME and AGE (and the namespace with ``-A``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

Getter = Callable[[dict[str, Any]], Any]


def age(stamp: str | None, now: dt.datetime | None = None) -> str:
    """kubectl's short age: 45s, 12m, 5h, 3d, 2y."""
    if not stamp:
        return "<unknown>"
    try:
        then = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return "<unknown>"
    seconds = max(int(((now or dt.datetime.now(dt.UTC)) - then).total_seconds()), 0)
    minutes, hours = seconds // 60, seconds // 3600
    days = hours // 24
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    return f"{days}d" if days < 730 else f"{days // 365}y"


def _meta(key: str) -> Getter:
    return lambda o: (o.get("metadata") or {}).get(key, "")


def _age(o: dict[str, Any]) -> str:
    return age((o.get("metadata") or {}).get("creationTimestamp"))


def _pod_ready(o: dict[str, Any]) -> str:
    statuses = (o.get("status") or {}).get("containerStatuses") or []
    total = len((o.get("spec") or {}).get("containers") or [])
    return f"{sum(1 for s in statuses if s.get('ready'))}/{total}"


def _pod_status(o: dict[str, Any]) -> str:
    status = o.get("status") or {}
    if (o.get("metadata") or {}).get("deletionTimestamp"):
        return "Terminating"
    for s in status.get("containerStatuses") or []:
        waiting = (s.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason"):
            return str(waiting["reason"])
    return str(status.get("reason") or status.get("phase") or "Unknown")


def _restarts(o: dict[str, Any]) -> str:
    statuses = (o.get("status") or {}).get("containerStatuses") or []
    return str(sum(int(s.get("restartCount") or 0) for s in statuses))


def _containers(key: str) -> Getter:
    return lambda o: ",".join(str(c.get(key, "")) for c in
                              (((o.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or [])


def _selector(o: dict[str, Any]) -> str:
    spec = o.get("spec") or {}
    selector = spec.get("selector") or {}
    labels = selector.get("matchLabels", selector) if isinstance(selector, dict) else {}
    return ",".join(f"{k}={v}" for k, v in labels.items() if isinstance(v, str)) or "<none>"


def _path(*keys: str, default: Any = "") -> Getter:
    def get(o: dict[str, Any]) -> Any:
        current: Any = o
        for key in keys:
            current = current.get(key) if isinstance(current, dict) else None
        return default if current is None else current
    return get


def _node_status(o: dict[str, Any]) -> str:
    conditions = (o.get("status") or {}).get("conditions") or []
    ready = next((c for c in conditions if c.get("type") == "Ready"), {})
    text = "Ready" if ready.get("status") == "True" else "NotReady"
    return text + (",SchedulingDisabled" if (o.get("spec") or {}).get("unschedulable") else "")


def _node_roles(o: dict[str, Any]) -> str:
    labels = (o.get("metadata") or {}).get("labels") or {}
    roles = [k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/")]
    return ",".join(roles) or "<none>"


def _node_address(kind: str) -> Getter:
    return lambda o: next((a.get("address") for a in (o.get("status") or {}).get("addresses") or []
                           if a.get("type") == kind), "<none>")


def _ports(o: dict[str, Any]) -> str:
    ports = (o.get("spec") or {}).get("ports") or []
    return ",".join(f"{p.get('port')}{':' + str(p['nodePort']) if p.get('nodePort') else ''}/"
                    f"{p.get('protocol', 'TCP')}" for p in ports) or "<none>"


def _count(*keys: str) -> Getter:
    return lambda o: str(len(_path(*keys, default={})(o) or {}))


def _ready_of(ready: tuple[str, ...], total: tuple[str, ...]) -> Getter:
    return lambda o: f"{_path(*ready, default=0)(o)}/{_path(*total, default=0)(o)}"


Columns = list[tuple[str, Getter]]
_NAME: Columns = [("NAME", _meta("name"))]
_AGE: Columns = [("AGE", _age)]

_WORKLOAD_WIDE: Columns = [("CONTAINERS", _containers("name")), ("IMAGES", _containers("image")),
                           ("SELECTOR", _selector)]


def _hosts(o: dict[str, Any]) -> str:
    return ",".join(r.get("host", "*") for r in (o.get("spec") or {}).get("rules") or []) or "*"


def _columns(*middle: tuple[str, Getter]) -> Columns:
    return [*_NAME, *middle, *_AGE]


TABLES: dict[str, tuple[Columns, Columns]] = {
    "pods": (_columns(("READY", _pod_ready), ("STATUS", _pod_status), ("RESTARTS", _restarts)),
             [("IP", _path("status", "podIP", default="<none>")),
              ("NODE", _path("spec", "nodeName", default="<none>"))]),
    "deployments": (_columns(("READY", _ready_of(("status", "readyReplicas"), ("spec", "replicas"))),
                             ("UP-TO-DATE", _path("status", "updatedReplicas", default=0)),
                             ("AVAILABLE", _path("status", "availableReplicas", default=0))), _WORKLOAD_WIDE),
    "replicasets": (_columns(("DESIRED", _path("spec", "replicas", default=0)),
                             ("CURRENT", _path("status", "replicas", default=0)),
                             ("READY", _path("status", "readyReplicas", default=0))), _WORKLOAD_WIDE),
    "statefulsets": (_columns(("READY", _ready_of(("status", "readyReplicas"), ("spec", "replicas")))),
                     _WORKLOAD_WIDE[:2]),
    "daemonsets": (_columns(("DESIRED", _path("status", "desiredNumberScheduled", default=0)),
                            ("CURRENT", _path("status", "currentNumberScheduled", default=0)),
                            ("READY", _path("status", "numberReady", default=0))), _WORKLOAD_WIDE),
    "services": (_columns(("TYPE", _path("spec", "type")), ("CLUSTER-IP", _path("spec", "clusterIP")),
                          ("PORT(S)", _ports)), [("SELECTOR", _selector)]),
    "nodes": ([*_columns(("STATUS", _node_status), ("ROLES", _node_roles)),
               ("VERSION", _path("status", "nodeInfo", "kubeletVersion"))],
              [("INTERNAL-IP", _node_address("InternalIP")), ("OS-IMAGE", _path("status", "nodeInfo", "osImage")),
               ("KERNEL-VERSION", _path("status", "nodeInfo", "kernelVersion")),
               ("CONTAINER-RUNTIME", _path("status", "nodeInfo", "containerRuntimeVersion"))]),
    "namespaces": (_columns(("STATUS", _path("status", "phase"))), []),
    "configmaps": (_columns(("DATA", _count("data"))), []),
    "secrets": (_columns(("TYPE", _path("type")), ("DATA", _count("data"))), []),
    "events": ([("LAST SEEN", lambda o: age(o.get("lastTimestamp") or o.get("eventTime"))),
                ("TYPE", _path("type")), ("REASON", _path("reason")),
                ("OBJECT", lambda o: f"{_path('involvedObject', 'kind')(o).lower()}/"
                                     f"{_path('involvedObject', 'name')(o)}"),
                ("MESSAGE", _path("message"))], []),
    "jobs": (_columns(("COMPLETIONS", _ready_of(("status", "succeeded"), ("spec", "completions")))), []),
    "persistentvolumeclaims": (_columns(("STATUS", _path("status", "phase")), ("VOLUME", _path("spec", "volumeName")),
                                        ("CAPACITY", _path("status", "capacity", "storage"))), []),
    "ingresses": (_columns(("CLASS", _path("spec", "ingressClassName", default="<none>")), ("HOSTS", _hosts)), []),
}


def table(plural: str, items: list[dict[str, Any]], *, wide: bool, namespaces: bool,
          show_labels: bool) -> tuple[list[str], list[list[Any]]]:
    default, extra = TABLES.get(plural, (_columns(), []))
    columns: Columns = list(default) + (list(extra) if wide else [])
    if namespaces:
        columns.insert(0, ("NAMESPACE", _meta("namespace")))
    if show_labels:
        columns.append(("LABELS", lambda o: ",".join(f"{k}={v}" for k, v in
                                                     ((o.get("metadata") or {}).get("labels") or {}).items())
                        or "<none>"))
    rows = [[_cell(get(item)) for _, get in columns] for item in items]
    return [name for name, _ in columns], rows


def _cell(value: Any) -> Any:
    return value if isinstance(value, (str, int)) else str(value)

