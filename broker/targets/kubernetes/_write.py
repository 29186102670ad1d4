"""The changing verbs: delete, scale, apply (server-side), patch, label, annotate, cordon, uncordon.

Each runs as a list of ``Change``s, for real or as a server-side dry run (``dryRun=All``): the
dry run is what approvers see as a diff (``preview``) before anything is persisted. Preconditions
(objects exist, ``--current-replicas``, ``--overwrite``) are checked for every object before the
first one is changed, so a refused command leaves nothing half done.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

from broker.guard.kubectl_command import PATCH_TYPES, KubectlCommand
from broker.guard.kubernetes import manifest_objects, resolve_type
from broker.problems import BadRequest, CommandFailed, NotFound
from broker.targets.base import DocumentResult, Presentation
from broker.targets.kubernetes._context import Ctx, with_kind
from broker.targets.kubernetes._resolve import Resolved, resolve, resolve_kind

FIELD_MANAGER = "agent-access-broker"
MERGE = PATCH_TYPES["merge"]
STRATEGIC = PATCH_TYPES["strategic"]


@dataclass
class Change:
    resolved: Resolved
    name: str
    namespace: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    message: str
    changed: bool = True


Planner = Callable[[Ctx, KubectlCommand, Any, bool], list[Change]]


def result(changes: list[Change], *, with_objects: bool = False) -> DocumentResult:
    text = "".join(c.message + "\n" for c in changes)
    out = DocumentResult(text=text, affected=sum(c.changed for c in changes), bytes=len(text),
                    status=f"{sum(c.changed for c in changes)} changed")
    if with_objects:
        out.document = {"apiVersion": "v1", "kind": "List", "items": [c.after for c in changes if c.after]}
    return out


def preview(changes: list[Change]) -> DocumentResult:
    """The changes as a document the masker sees first, rendered as a unified diff afterwards."""
    items = [{"object": f"{c.resolved.qualified_kind}/{c.name}", "namespace": c.namespace or "",
              "before": _comparable(c.before), "after": _comparable(c.after)} for c in changes]
    return DocumentResult(document={"changes": items}, rendering=Presentation(render_diff),
                     status=f"{len(items)} object(s) would change")


def render_diff(document: dict[str, Any]) -> str:
    parts = []
    for change in document.get("changes", []):
        where = f"{change['namespace']}/{change['object']}" if change.get("namespace") else change["object"]
        before = _yaml(change.get("before"))
        after = _yaml(change.get("after"))
        diff = list(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                         fromfile=f"live/{where}", tofile=f"merged/{where}"))
        parts.append("".join(diff) if diff else f"# {where}: no changes\n")
    return "".join(parts)


def _yaml(obj: Any) -> str:
    return "" if obj is None else yaml.safe_dump(obj, sort_keys=True, default_flow_style=False, allow_unicode=True)


def _comparable(obj: dict[str, Any] | None) -> dict[str, Any] | None:
    """Drop what changes on every write and says nothing to a reviewer."""
    if obj is None:
        return None
    out = copy.deepcopy(obj)
    out.pop("status", None)
    meta = out.get("metadata") or {}
    for key in ("managedFields", "resourceVersion", "generation", "uid", "creationTimestamp"):
        meta.pop(key, None)
    return out


def _dry(dry_run: bool) -> dict[str, Any]:
    return {"dry_run": "All"} if dry_run else {}


def _suffix(dry_run: bool) -> str:
    return " (server dry run)" if dry_run else ""


def _targets(ctx: Ctx, cmd: KubectlCommand, resolved: Resolved) -> list[tuple[str, dict[str, Any]]]:
    """The objects a command acts on, each fetched first (missing ones stop the command before any change)."""
    ns = ctx.namespace(cmd, resolved)
    dyn = ctx.cluster.dynamic
    if cmd.names:
        found = []
        for name in cmd.names:
            try:
                found.append((name, ctx.request(resolved.operation("get", ns, name), dyn.get, resolved.resource,
                                                name=name, namespace=ns)))
            except NotFound:
                if not cmd.ignore_not_found:
                    raise
        return found
    listing = ctx.request(resolved.operation("list", ns), dyn.get, resolved.resource, namespace=ns,
                          label_selector=cmd.selector)
    items = (listing or {}).get("items") or []
    if len(items) > ctx.limits.max_rows:
        raise BadRequest(f"The command would act on {len(items)} {resolved.plural}; the policy allows at most "
                         f"{ctx.limits.max_rows} per command. Narrow the selector.", code="too_many_objects")
    return [(i["metadata"]["name"], i) for i in items]


def delete(ctx: Ctx, cmd: KubectlCommand, _: Any, dry_run: bool) -> list[Change]:
    resolved = resolve(ctx.cluster, resolve_type(cmd.resource), "delete")
    ns = ctx.namespace(cmd, resolved)
    targets = _targets(ctx, cmd, resolved)
    changes = []
    for name, obj in targets:
        ctx.request(resolved.operation("delete", ns, name), ctx.cluster.dynamic.delete, resolved.resource,
                    name=name, namespace=ns, propagation_policy=cmd.cascade.capitalize(),
                    grace_period_seconds=cmd.grace_period, **_dry(dry_run))
        changes.append(Change(resolved, name, ns, with_kind(obj, resolved), None,
                              f'{resolved.qualified_kind} "{name}" deleted{_suffix(dry_run)}'))
    if not changes and not cmd.ignore_not_found:
        raise NotFound(f"No {resolved.plural} matched; nothing was deleted.", code="kubernetes_not_found")
    return changes


def scale(ctx: Ctx, cmd: KubectlCommand, _: Any, dry_run: bool) -> list[Change]:
    resolved = resolve(ctx.cluster, resolve_type(cmd.resource), "scale")
    subresource = (resolved.resource.subresources or {}).get("scale")
    if subresource is None:
        raise CommandFailed(f"{resolved.plural} cannot be scaled (no scale subresource).", code="kubernetes_invalid")
    ns = ctx.namespace(cmd, resolved)
    current = {name: ctx.request(resolved.operation("get", ns, name, "scale"), ctx.cluster.dynamic.get, subresource,
                                 name=name, namespace=ns) for name in cmd.names}
    if cmd.current_replicas is not None:
        for name, scale_obj in current.items():
            if (scale_obj.get("spec") or {}).get("replicas", 0) != cmd.current_replicas:
                raise CommandFailed(f"Expected {cmd.current_replicas} replicas of {name}, found "
                                    f"{(scale_obj.get('spec') or {}).get('replicas', 0)}; nothing was scaled.",
                                    code="precondition_failed")
    changes = []
    for name, before in current.items():
        after = ctx.request(resolved.operation("patch", ns, name, "scale"), ctx.cluster.dynamic.patch, subresource,
                            body={"spec": {"replicas": cmd.replicas}}, name=name, namespace=ns, content_type=MERGE,
                            **_dry(dry_run))
        changes.append(Change(resolved, name, ns, before, after,
                              f"{resolved.qualified_kind}/{name} scaled{_suffix(dry_run)}",
                              (before.get("spec") or {}).get("replicas") != cmd.replicas))
    return changes


def apply(ctx: Ctx, cmd: KubectlCommand, manifest: Any, dry_run: bool) -> list[Change]:
    objects = manifest_objects(manifest, cmd.namespace)
    planned = []
    for obj in objects:
        resolved = resolve_kind(ctx.cluster, obj.body["apiVersion"], obj.body["kind"])
        if (obj.type.namespaced is None and not resolved.namespaced) or \
                (obj.type.namespaced is not None and obj.type.namespaced != resolved.namespaced):
            raise BadRequest(f"{obj.type.kind} is {'namespaced' if resolved.namespaced else 'cluster-scoped'} in "
                             "this cluster, unlike what the broker classified; it will not apply it.",
                             code="classification_mismatch")
        ns = obj.namespace if resolved.namespaced else None
        body = copy.deepcopy(obj.body)
        if ns:
            body["metadata"]["namespace"] = ns
        try:
            before = ctx.request(resolved.operation("get", ns, obj.name), ctx.cluster.dynamic.get, resolved.resource,
                                 name=obj.name, namespace=ns)
        except NotFound:
            before = None
        planned.append((resolved, obj.name, ns, body, before))
    changes = []
    for resolved, name, ns, body, before in planned:
        after = ctx.request(resolved.operation("apply", ns, name), ctx.cluster.dynamic.server_side_apply,
                            resolved.resource, body=body, name=name, namespace=ns, field_manager=FIELD_MANAGER,
                            force_conflicts=True if cmd.force_conflicts else None, **_dry(dry_run))
        changes.append(Change(resolved, name, ns, before, after,
                              f"{resolved.qualified_kind}/{name} serverside-applied{_suffix(dry_run)}",
                              _comparable(before) != _comparable(after)))
    return changes


def patch(ctx: Ctx, cmd: KubectlCommand, _: Any, dry_run: bool) -> list[Change]:
    resolved = resolve(ctx.cluster, resolve_type(cmd.resource), "patch")
    ns = ctx.namespace(cmd, resolved)
    name, before = _targets(ctx, cmd, resolved)[0]
    after = ctx.request(resolved.operation("patch", ns, name), ctx.cluster.dynamic.patch, resolved.resource,
                        body=cmd.patch, name=name, namespace=ns, content_type=PATCH_TYPES[cmd.patch_type],
                        **_dry(dry_run))
    changed = _comparable(before) != _comparable(after)
    return [Change(resolved, name, ns, before, after, f"{resolved.qualified_kind}/{name} patched"
                   f"{'' if changed else ' (no change)'}{_suffix(dry_run)}", changed)]


def label(ctx: Ctx, cmd: KubectlCommand, _: Any, dry_run: bool) -> list[Change]:
    field = "labels" if cmd.verb == "label" else "annotations"
    resolved = resolve(ctx.cluster, resolve_type(cmd.resource), cmd.verb)
    ns = ctx.namespace(cmd, resolved)
    targets = _targets(ctx, cmd, resolved)
    if not targets:
        raise NotFound(f"No {resolved.plural} matched.", code="kubernetes_not_found")
    if not cmd.overwrite:
        for name, obj in targets:
            existing = (obj.get("metadata") or {}).get(field) or {}
            for key, value in cmd.changes.items():
                if value is not None and key in existing and existing[key] != value:
                    raise CommandFailed(f"{resolved.plural} {name}: '{key}' already has a value; add --overwrite "
                                        "to replace it. Nothing was changed.", code="precondition_failed")
    past = {"labels": "labeled", "annotations": "annotated"}[field]
    changes = []
    for name, before in targets:
        after = ctx.request(resolved.operation("patch", ns, name), ctx.cluster.dynamic.patch, resolved.resource,
                            body={"metadata": {field: dict(cmd.changes)}}, name=name, namespace=ns,
                            content_type=MERGE, **_dry(dry_run))
        changed = (before.get("metadata") or {}).get(field) != (after.get("metadata") or {}).get(field)
        verb = past if any(v is not None for v in cmd.changes.values()) else "un" + past
        changes.append(Change(resolved, name, ns, before, after, f"{resolved.qualified_kind}/{name} "
                              f"{verb if changed else 'not ' + past}{_suffix(dry_run)}", changed))
    return changes


def cordon(ctx: Ctx, cmd: KubectlCommand, _: Any, dry_run: bool) -> list[Change]:
    resolved = resolve(ctx.cluster, resolve_type("nodes"), cmd.verb)
    wanted = cmd.verb == "cordon"
    targets = _targets(ctx, cmd, resolved)
    changes = []
    for name, before in targets:
        if bool((before.get("spec") or {}).get("unschedulable")) == wanted:
            changes.append(Change(resolved, name, None, before, before, f"node/{name} already {cmd.verb}ed", False))
            continue
        after = ctx.request(resolved.operation("patch", None, name), ctx.cluster.dynamic.patch, resolved.resource,
                            body={"spec": {"unschedulable": True if wanted else None}}, name=name,
                            content_type=STRATEGIC, **_dry(dry_run))
        changes.append(Change(resolved, name, None, before, after, f"node/{name} {cmd.verb}ed{_suffix(dry_run)}"))
    return changes
