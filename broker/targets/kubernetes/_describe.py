"""``kubectl describe`` text, rendered from the *masked* objects and their events.

The useful subset: the common header (name, namespace, labels, annotations, age), then what
matters per kind (pods: node, status, IP, containers with state, restarts, resources and
environment; deployments: replicas, strategy, pod template, conditions; Secrets: the keys only;
ConfigMaps: their data), otherwise the spec and status as YAML, and the events at the end.
"""

from __future__ import annotations

from typing import Any

import yaml

from broker.targets.kubernetes._tables import age


def render_describe(document: dict[str, Any]) -> str:
    blocks = [_describe(entry.get("object") or {}, entry.get("events") or []) for entry in document.get("items", [])]
    return "\n\n".join(blocks) + ("\n" if blocks else "")


def _describe(obj: dict[str, Any], events: list[dict[str, Any]]) -> str:
    meta = obj.get("metadata") or {}
    lines = [_field("Name", meta.get("name", ""))]
    if meta.get("namespace"):
        lines.append(_field("Namespace", meta["namespace"]))
    lines += _mapping("Labels", meta.get("labels"))
    lines += _mapping("Annotations", {k: v for k, v in (meta.get("annotations") or {}).items()
                                      if k != "kubectl.kubernetes.io/last-applied-configuration"})
    created = meta.get("creationTimestamp", "")
    lines.append(_field("CreationTimestamp", f"{created} ({age(created)} ago)"))
    owners = meta.get("ownerReferences") or []
    if owners:
        lines.append(_field("Controlled By", f"{owners[0].get('kind')}/{owners[0].get('name')}"))
    kind = obj.get("kind", "")
    body = {"Pod": _pod, "Deployment": _deployment, "Secret": _secret, "ConfigMap": _configmap}.get(kind, _generic)
    lines += body(obj)
    lines += _events(events)
    return "\n".join(lines)


def _field(label: str, value: Any, indent: int = 0) -> str:
    pad = " " * indent
    return f"{pad}{label + ':':<{max(14 - indent, len(label) + 2)}}{value}"


def _mapping(label: str, values: dict[str, Any] | None, indent: int = 0) -> list[str]:
    if not values:
        return [_field(label, "<none>", indent)]
    items = [f"{k}={v}" for k, v in values.items()]
    width = max(14 - indent, len(label) + 2)
    return [_field(label, items[0], indent)] + [" " * (indent + width) + item for item in items[1:]]


def _containers(spec: dict[str, Any], statuses: list[dict[str, Any]], indent: int) -> list[str]:
    lines = []
    by_name = {s.get("name"): s for s in statuses}
    pad = " " * indent
    for c in spec.get("containers") or []:
        lines.append(f"{pad}{c.get('name')}:")
        lines.append(_field("Image", c.get("image", ""), indent + 2))
        ports = ", ".join(f"{p.get('containerPort')}/{p.get('protocol', 'TCP')}" for p in c.get("ports") or [])
        lines.append(_field("Port", ports or "<none>", indent + 2))
        status = by_name.get(c.get("name"))
        if status:
            state = next(iter((status.get("state") or {}).items()), ("unknown", {}))
            lines.append(_field("State", state[0].capitalize(), indent + 2))
            last = next(iter((status.get("lastState") or {}).items()), None)
            if last:
                lines.append(_field("Last State", f"{last[0].capitalize()} (reason {last[1].get('reason', '?')}, "
                                    f"exit code {last[1].get('exitCode', '?')})", indent + 2))
            lines.append(_field("Ready", str(bool(status.get("ready"))), indent + 2))
            lines.append(_field("Restart Count", status.get("restartCount", 0), indent + 2))
        resources = c.get("resources") or {}
        for label in ("limits", "requests"):
            if resources.get(label):
                lines += _mapping(label.capitalize(), resources[label], indent + 2)
        lines.append(f"{pad}  Environment:{'  <none>' if not c.get('env') else ''}")
        for env in c.get("env") or []:
            lines.append(f"{pad}    {env.get('name')}:  {_env_value(env)}")
    return lines


def _env_value(env: dict[str, Any]) -> str:
    if "value" in env:
        return str(env["value"])
    source = env.get("valueFrom") or {}
    if not isinstance(source, dict):
        return str(source)
    for kind, ref in source.items():
        if isinstance(ref, dict) and "key" in ref:
            what = "secret" if kind == "secretKeyRef" else "config map"
            return f"<set to the key '{ref['key']}' in {what} '{ref.get('name')}'>"
    return "<set from a reference>"


def _conditions(status: dict[str, Any]) -> list[str]:
    conditions = status.get("conditions") or []
    if not conditions:
        return []
    lines = ["Conditions:", "  Type              Status  Reason"]
    lines += [f"  {c.get('type', ''):<18}{c.get('status', ''):<8}{c.get('reason', '')}" for c in conditions]
    return lines


def _pod(obj: dict[str, Any]) -> list[str]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    lines = [_field("Node", f"{spec.get('nodeName', '<none>')}/{status.get('hostIP', '')}"),
             _field("Start Time", status.get("startTime", "<unknown>")),
             _field("Status", status.get("phase", "Unknown")), _field("IP", status.get("podIP", "<none>")),
             "Containers:"]
    lines += _containers(spec, status.get("containerStatuses") or [], 2)
    return lines + _conditions(status)


def _deployment(obj: dict[str, Any]) -> list[str]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    selector = ",".join(f"{k}={v}" for k, v in ((spec.get("selector") or {}).get("matchLabels") or {}).items())
    desired = spec.get("replicas", 1)
    available = status.get("availableReplicas", 0)
    lines = [_field("Selector", selector or "<none>"),
             _field("Replicas", f"{desired} desired | {status.get('updatedReplicas', 0)} updated | "
                                f"{status.get('replicas', 0)} total | {available} available | "
                                f"{max(desired - available, 0)} unavailable"),
             _field("StrategyType", (spec.get("strategy") or {}).get("type", "RollingUpdate")),
             "Pod Template:"]
    template = spec.get("template") or {}
    lines += _mapping("Labels", (template.get("metadata") or {}).get("labels"), 2)
    lines.append("  Containers:")
    lines += _containers(template.get("spec") or {}, [], 3)
    return lines + _conditions(status)


def _secret(obj: dict[str, Any]) -> list[str]:
    lines = ["", _field("Type", obj.get("type", "Opaque")), "", "Data", "===="]
    keys = list((obj.get("data") or {}).keys()) + list((obj.get("stringData") or {}).keys())
    return lines + [f"{k}:  <masked by the broker>" for k in keys]


def _configmap(obj: dict[str, Any]) -> list[str]:
    lines = ["", "Data", "===="]
    for key, value in (obj.get("data") or {}).items():
        lines += [f"{key}:", "----", str(value), ""]
    return lines


def _generic(obj: dict[str, Any]) -> list[str]:
    lines = []
    for part in ("spec", "status"):
        if obj.get(part):
            lines.append(f"{part.capitalize()}:")
            dumped = yaml.safe_dump(obj[part], sort_keys=False, default_flow_style=False, allow_unicode=True)
            lines += ["  " + line for line in dumped.rstrip().splitlines()]
    return lines


def _events(events: list[dict[str, Any]]) -> list[str]:
    if not events:
        return ["Events:          <none>"]
    rows = [(e.get("type", ""), e.get("reason", ""), age(e.get("lastTimestamp") or e.get("eventTime")),
             (e.get("source") or {}).get("component", ""), e.get("message", "")) for e in events]
    header = ("Type", "Reason", "Age", "From", "Message")
    widths = [max(len(str(r[i])) for r in [*rows, header]) for i in range(4)]
    lines = ["Events:", "  " + "  ".join(h.ljust(w) for h, w in zip(header[:4], widths, strict=True)) + "  Message",
             "  " + "  ".join("-" * len(h) + " " * (w - len(h)) for h, w in zip(header[:4], widths, strict=True))
             + "  -------"]
    lines += ["  " + "  ".join(str(v).ljust(w) for v, w in zip(r[:4], widths, strict=True)) + f"  {r[4]}" for r in rows]
    return lines
