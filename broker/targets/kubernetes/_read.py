"""The reading verbs: get, describe, logs, top. Each returns a ``DocumentResult`` in kubectl's shapes."""

from __future__ import annotations

import json
from typing import Any

import yaml

from broker.guard.kubectl_command import KubectlCommand
from broker.guard.kubernetes import ResourceType, resolve_type
from broker.problems import BadRequest, CommandFailed, NotFound, Unavailable
from broker.targets.base import Column, DocumentResult, Presentation
from broker.targets.kubernetes._context import Ctx, with_kind
from broker.targets.kubernetes._describe import render_describe
from broker.targets.kubernetes._resolve import Resolved, resolve
from broker.targets.kubernetes._secrets import SecretValues
from broker.targets.kubernetes._tables import table

MAX_LOG_PODS = 10


def render_yaml(document: Any) -> str:
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False, allow_unicode=True)


def fetch(ctx: Ctx, cmd: KubectlCommand, resolved: Resolved) -> tuple[list[dict[str, Any]], bool]:
    """The named objects, or the ones a list with the command's selectors returns (capped)."""
    ns = ctx.namespace(cmd, resolved)
    dyn = ctx.cluster.dynamic
    items: list[dict[str, Any]] = []
    if cmd.names:
        for name in cmd.names:
            try:
                items.append(ctx.request(resolved.operation("get", ns, name), dyn.get, resolved.resource,
                                         name=name, namespace=ns))
            except NotFound:
                if not cmd.ignore_not_found:
                    raise
        return [with_kind(i, resolved) for i in items], False
    listing = ctx.request(resolved.operation("list", ns), dyn.get, resolved.resource, namespace=ns,
                          label_selector=cmd.selector, field_selector=cmd.field_selector,
                          limit=ctx.limits.max_rows + 1)
    items = [with_kind(i, resolved) for i in (listing or {}).get("items") or []]
    truncated = len(items) > ctx.limits.max_rows or bool(((listing or {}).get("metadata") or {}).get("continue"))
    return items[: ctx.limits.max_rows], truncated


def _cap_bytes(items: list[dict[str, Any]], max_bytes: int) -> tuple[list[dict[str, Any]], bool, int]:
    kept, size = [], 0
    for item in items:
        size += len(json.dumps(item, ensure_ascii=False, default=str))
        if size > max_bytes:
            return kept, True, size
        kept.append(item)
    return kept, False, size


def get(ctx: Ctx, cmd: KubectlCommand) -> DocumentResult:
    resolved = resolve(ctx.cluster, resolve_type(cmd.resource), "get")
    items, truncated = fetch(ctx, cmd, resolved)
    items, over, size = _cap_bytes(items, ctx.limits.max_bytes)
    result = DocumentResult(truncated=truncated or over, bytes=size, status=f"{len(items)} {resolved.plural}",
                       truncated_by="max_rows" if truncated else "max_bytes" if over else None)
    if cmd.output in ("json", "yaml"):
        single = len(cmd.names) == 1 and len(items) == 1
        result.document = items[0] if single else {"apiVersion": "v1", "kind": "List", "items": items,
                                                     "metadata": {"resourceVersion": ""}}
        if cmd.output == "yaml":
            result.rendering = Presentation(render_yaml)
    elif cmd.output == "name":
        result.text = "".join(f"{resolved.qualified_kind}/{i['metadata']['name']}\n" for i in items)
    else:
        columns, rows = table(resolved.plural, items, wide=cmd.output == "wide",
                              namespaces=cmd.all_namespaces and resolved.namespaced, show_labels=cmd.show_labels)
        result.columns = [Column(c, "string") for c in columns]
        result.rows = rows
        if not items:
            where = f" in {ctx.namespace(cmd, resolved)} namespace" if ctx.namespace(cmd, resolved) else ""
            result.status = f"No resources found{where}."
    return result


def describe(ctx: Ctx, cmd: KubectlCommand) -> DocumentResult:
    resolved = resolve(ctx.cluster, resolve_type(cmd.resource), "describe")
    items, truncated = fetch(ctx, cmd, resolved)
    items = items[:20]
    entries = []
    for obj in items:
        meta = obj.get("metadata") or {}
        selector = f"involvedObject.name={meta.get('name')}"
        if meta.get("namespace"):
            selector += f",involvedObject.namespace={meta['namespace']}"
        events = ctx.request({"group": "", "version": "v1", "resource": "events", "verb": "list",
                              "namespace": meta.get("namespace", ""), "name": ""},
                             ctx.cluster.dynamic.get, _events_resource(ctx), namespace=meta.get("namespace"),
                             field_selector=selector)
        entries.append({"object": obj, "events": [e for e in (events or {}).get("items") or []
                                                   if (e.get("involvedObject") or {}).get("kind") in
                                                   (None, obj.get("kind"))][-20:]})
    if not entries:
        raise NotFound(f"No {resolved.plural} matched.", code="kubernetes_not_found")
    return DocumentResult(document={"items": entries}, rendering=Presentation(render_describe),
                     truncated=truncated, status=f"{len(entries)} described")


def _events_resource(ctx: Ctx) -> Any:
    return resolve(ctx.cluster, resolve_type("events"), "get").resource


def logs(ctx: Ctx, cmd: KubectlCommand, secrets: SecretValues) -> DocumentResult:
    pods_type = resolve(ctx.cluster, resolve_type("pods"), "logs")
    ns = cmd.namespace or "default"
    if cmd.names:
        pods = [ctx.request(pods_type.operation("get", ns, cmd.names[0]), ctx.cluster.dynamic.get,
                            pods_type.resource, name=cmd.names[0], namespace=ns)]
    else:
        listing = ctx.request(pods_type.operation("list", ns), ctx.cluster.dynamic.get, pods_type.resource,
                              namespace=ns, label_selector=cmd.selector)
        pods = (listing or {}).get("items") or []
        if not pods:
            raise NotFound(f"No pods in {ns} match {cmd.selector!r}.", code="kubernetes_not_found")
        if len(pods) > MAX_LOG_PODS:
            raise BadRequest(f"The selector matches {len(pods)} pods; logs reads at most {MAX_LOG_PODS} at once. "
                             "Narrow the selector.", code="too_many_objects")
    streams = [(p["metadata"]["name"], c) for p in pods for c in _log_containers(p, cmd)]
    known = secrets.for_pods(ctx, ns, pods)  # before any log is read: fail closed
    prefix = len(streams) > 1
    budget = ctx.limits.max_bytes
    parts, truncated = [], False
    for pod, container in streams:
        text = ctx.call(pods_type.operation("get", ns, pod, "log"), ctx.cluster.core.read_namespaced_pod_log,
                        pod, ns, container=container, tail_lines=cmd.tail if cmd.tail is not None and cmd.tail >= 0
                        else None, since_seconds=cmd.since_seconds, previous=cmd.previous or None,
                        timestamps=cmd.timestamps or None, limit_bytes=budget + 1)
        text = text if isinstance(text, str) else str(text or "")
        if prefix:
            text = "".join(f"[pod/{pod}/{container}] {line}\n" for line in text.splitlines())
        if len(text) > budget:
            text, truncated = text[:budget], True
        parts.append(text)
        budget -= len(text)
        if budget <= 0:
            truncated = True
            break
    output = "".join(parts)
    return DocumentResult(text=output, truncated=truncated, bytes=len(output), known=known,
                     status=f"{output.count(chr(10))} lines from {len(streams)} container(s)")


def _log_containers(pod: dict[str, Any], cmd: KubectlCommand) -> list[str]:
    names = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
    if cmd.all_containers:
        return names
    if cmd.container:
        if cmd.container not in names:
            raise CommandFailed(f"Container {cmd.container} is not in pod {pod['metadata']['name']} "
                                f"(it has: {', '.join(names)}).", code="kubernetes_invalid")
        return [cmd.container]
    default = ((pod.get("metadata") or {}).get("annotations") or {}).get("kubectl.kubernetes.io/default-container")
    return [default if default in names else names[0]] if names else []


def top(ctx: Ctx, cmd: KubectlCommand) -> DocumentResult:
    try:
        metrics = resolve(ctx.cluster, ResourceType(cmd.action, "metrics.k8s.io"), "top")
    except BadRequest as exc:
        raise Unavailable("This cluster serves no metrics API (metrics.k8s.io): kubectl top needs metrics-server "
                          "(on AKS it is installed by default).", code="metrics_unavailable") from exc
    ns = None if cmd.action == "nodes" or cmd.all_namespaces else (cmd.namespace or "default")
    if cmd.names:
        items = [ctx.request(metrics.operation("get", ns, cmd.names[0]), ctx.cluster.dynamic.get,
                             metrics.resource, name=cmd.names[0], namespace=ns)]
    else:
        listing = ctx.request(metrics.operation("list", ns), ctx.cluster.dynamic.get, metrics.resource,
                              namespace=ns, label_selector=cmd.selector)
        items = (listing or {}).get("items") or []
    if cmd.action == "nodes":
        columns, rows = _top_nodes(ctx, items)
    else:
        columns, rows = _top_pods(items, cmd)
    return DocumentResult(columns=[Column(c, "string") for c in columns], rows=rows[: ctx.limits.max_rows],
                     truncated=len(rows) > ctx.limits.max_rows, status=f"{len(rows)} {cmd.action}")


def _top_pods(items: list[dict[str, Any]], cmd: KubectlCommand) -> tuple[list[str], list[list[Any]]]:
    lead = ["NAMESPACE"] if cmd.all_namespaces else []
    rows: list[list[Any]] = []
    for item in items:
        meta = item.get("metadata") or {}
        first = [meta.get("namespace", "")] if cmd.all_namespaces else []
        containers = item.get("containers") or []
        if cmd.containers:
            rows += [[*first, meta.get("name"), c.get("name"), _cpu(c), _memory(c)] for c in containers]
        else:
            cpu = sum(_millicores((c.get("usage") or {}).get("cpu", "0")) for c in containers)
            memory = sum(_mebibytes((c.get("usage") or {}).get("memory", "0")) for c in containers)
            rows.append([*first, meta.get("name"), f"{cpu}m", f"{memory}Mi"])
    if cmd.containers:
        return [*lead, "POD", "NAME", "CPU(cores)", "MEMORY(bytes)"], rows
    return [*lead, "NAME", "CPU(cores)", "MEMORY(bytes)"], rows


def _top_nodes(ctx: Ctx, items: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    nodes_type = resolve(ctx.cluster, resolve_type("nodes"), "top")
    listing = ctx.request(nodes_type.operation("list", None), ctx.cluster.dynamic.get, nodes_type.resource)
    allocatable = {n["metadata"]["name"]: (n.get("status") or {}).get("allocatable") or {}
                   for n in (listing or {}).get("items") or []}
    rows = []
    for item in items:
        name = (item.get("metadata") or {}).get("name", "")
        cpu, memory = _millicores(item["usage"].get("cpu", "0")), _mebibytes(item["usage"].get("memory", "0"))
        cap_cpu = _millicores(allocatable.get(name, {}).get("cpu", "0")) or 1
        cap_mem = _mebibytes(allocatable.get(name, {}).get("memory", "0")) or 1
        rows.append([name, f"{cpu}m", f"{cpu * 100 // cap_cpu}%", f"{memory}Mi", f"{memory * 100 // cap_mem}%"])
    return ["NAME", "CPU(cores)", "CPU%", "MEMORY(bytes)", "MEMORY%"], rows


def _cpu(container: dict[str, Any]) -> str:
    return f"{_millicores((container.get('usage') or {}).get('cpu', '0'))}m"


def _memory(container: dict[str, Any]) -> str:
    return f"{_mebibytes((container.get('usage') or {}).get('memory', '0'))}Mi"


def _millicores(quantity: str) -> int:
    q = str(quantity)
    if q.endswith("n"):
        return int(q[:-1]) // 1_000_000
    if q.endswith("u"):
        return int(q[:-1]) // 1_000
    if q.endswith("m"):
        return int(q[:-1])
    return int(float(q) * 1000)


def _mebibytes(quantity: str) -> int:
    q = str(quantity)
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "Ti": 1024 * 1024, "K": 1000 / 1024 / 1024, "M": 1e6 / 1024 / 1024,
             "G": 1e9 / 1024 / 1024}
    for suffix, factor in units.items():
        if q.endswith(suffix):
            return int(float(q[: -len(suffix)]) * factor)
    return int(float(q) / 1024 / 1024) if q else 0
