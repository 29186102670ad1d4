"""``rollout restart|undo|status`` the way kubectl does them.

restart: stamps ``kubectl.kubernetes.io/restartedAt`` on the pod template (deployments, stateful
sets, daemon sets). undo: finds the deployment's replica sets by their revision annotation and puts
the previous (or ``--to-revision``) pod template back. status: reads the controller's status until
the rollout is done or the time is up (``--timeout``, capped by the policy's timeout).
"""

from __future__ import annotations

import copy
import datetime as dt
import time
from typing import Any

from broker.guard.kubectl_command import PATCH_TYPES, KubectlCommand
from broker.guard.kubernetes import resolve_type
from broker.problems import CommandFailed
from broker.targets.base import DocumentResult
from broker.targets.kubernetes._context import Ctx
from broker.targets.kubernetes._resolve import resolve
from broker.targets.kubernetes._write import Change, _dry, _suffix, _targets

REVISION = "deployment.kubernetes.io/revision"
RESTARTABLE = ("deployments", "statefulsets", "daemonsets")


def _workload(ctx: Ctx, cmd: KubectlCommand, allowed: tuple[str, ...]) -> Any:
    resolved = resolve(ctx.cluster, resolve_type(cmd.resource), cmd.verb_phrase)
    if resolved.group != "apps" or resolved.plural not in allowed:
        raise CommandFailed(f"rollout {cmd.action} works on {', '.join(allowed)}, not {resolved.plural}.",
                            code="kubernetes_invalid")
    return resolved


def restart(ctx: Ctx, cmd: KubectlCommand, _: Any, dry_run: bool) -> list[Change]:
    resolved = _workload(ctx, cmd, RESTARTABLE)
    ns = ctx.namespace(cmd, resolved)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": stamp}}}}}
    changes = []
    for name, before in _targets(ctx, cmd, resolved):
        after = ctx.request(resolved.operation("patch", ns, name), ctx.cluster.dynamic.patch, resolved.resource,
                            body=body, name=name, namespace=ns, content_type=PATCH_TYPES["strategic"],
                            **_dry(dry_run))
        changes.append(Change(resolved, name, ns, before, after,
                              f"{resolved.qualified_kind}/{name} restarted{_suffix(dry_run)}"))
    return changes


def undo(ctx: Ctx, cmd: KubectlCommand, _: Any, dry_run: bool) -> list[Change]:
    resolved = _workload(ctx, cmd, ("deployments",))
    replica_sets = resolve(ctx.cluster, resolve_type("replicasets"), "get")
    ns = ctx.namespace(cmd, resolved)
    changes = []
    for name, deployment in _targets(ctx, cmd, resolved):
        meta = deployment.get("metadata") or {}
        selector = ",".join(f"{k}={v}" for k, v in
                            (((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}).items())
        listing = ctx.request(replica_sets.operation("list", ns), ctx.cluster.dynamic.get, replica_sets.resource,
                              namespace=ns, label_selector=selector or None)
        history = {}
        for rs in (listing or {}).get("items") or []:
            owners = (rs.get("metadata") or {}).get("ownerReferences") or []
            if any(o.get("uid") == meta.get("uid") for o in owners):
                revision = int(((rs.get("metadata") or {}).get("annotations") or {}).get(REVISION, "0"))
                history[revision] = rs
        current = int((meta.get("annotations") or {}).get(REVISION, "0"))
        if cmd.to_revision is not None:
            if cmd.to_revision not in history:
                raise CommandFailed(f"Deployment {name} has no revision {cmd.to_revision} (it has: "
                                    f"{', '.join(map(str, sorted(history))) or 'none'}).", code="kubernetes_invalid")
            wanted = cmd.to_revision
        else:
            earlier = [r for r in history if r < current]
            if not earlier:
                raise CommandFailed(f"Deployment {name} has no earlier revision to roll back to.",
                                    code="kubernetes_invalid")
            wanted = max(earlier)
        template = copy.deepcopy(history[wanted]["spec"]["template"])
        (template.get("metadata") or {}).get("labels", {}).pop("pod-template-hash", None)
        if template == (deployment.get("spec") or {}).get("template"):
            changes.append(Change(resolved, name, ns, deployment, deployment, f"{resolved.qualified_kind}/{name} "
                                  f"skipped rollback (current template already matches revision {wanted})", False))
            continue
        after = ctx.request(resolved.operation("patch", ns, name), ctx.cluster.dynamic.patch, resolved.resource,
                            body=[{"op": "replace", "path": "/spec/template", "value": template}], name=name,
                            namespace=ns, content_type=PATCH_TYPES["json"], **_dry(dry_run))
        changes.append(Change(resolved, name, ns, deployment, after,
                              f"{resolved.qualified_kind}/{name} rolled back to revision {wanted}{_suffix(dry_run)}"))
    return changes


def status(ctx: Ctx, cmd: KubectlCommand) -> DocumentResult:
    resolved = _workload(ctx, cmd, RESTARTABLE)
    ns = ctx.namespace(cmd, resolved)
    name = cmd.names[0]
    limit = min(cmd.timeout_seconds or ctx.timeout, ctx.timeout)
    deadline = time.monotonic() + limit
    lines: list[str] = []
    while True:
        obj = ctx.request(resolved.operation("get", ns, name), ctx.cluster.dynamic.get, resolved.resource,
                          name=name, namespace=ns)
        message, done = _progress(resolved.plural, name, obj)
        if not lines or lines[-1] != message:
            lines.append(message)
        if done or time.monotonic() >= deadline:
            break
        time.sleep(min(1.0, max(deadline - time.monotonic(), 0)))
    text = "\n".join(lines) + "\n"
    return DocumentResult(text=text, bytes=len(text),
                          status="complete" if done else f"still rolling out after {limit:g}s")


def _progress(plural: str, name: str, obj: dict[str, Any]) -> tuple[str, bool]:
    """kubectl's status messages for deployments, stateful sets and daemon sets."""
    meta, spec, st = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    if meta.get("generation", 0) > st.get("observedGeneration", 0):
        return "Waiting for rollout to finish: the controller has not observed the new spec yet...", False
    if plural == "daemonsets":
        want, updated = st.get("desiredNumberScheduled", 0), st.get("updatedNumberScheduled", 0)
        if updated < want:
            return f"Waiting for daemon set \"{name}\" rollout to finish: {updated} of {want} updated pods...", False
        ready = st.get("numberAvailable", 0)
        if ready < want:
            return f"Waiting for daemon set \"{name}\" rollout to finish: {ready} of {want} pods available...", False
        return f'daemon set "{name}" successfully rolled out', True
    replicas = spec.get("replicas", 1)
    updated, total = st.get("updatedReplicas", 0), st.get("replicas", 0)
    available = st.get("availableReplicas", st.get("readyReplicas", 0))
    kind = "deployment" if plural == "deployments" else "statefulset"
    if updated < replicas:
        return (f'Waiting for {kind} "{name}" rollout to finish: {updated} out of {replicas} new replicas have '
                "been updated..."), False
    if total > updated:
        return (f'Waiting for {kind} "{name}" rollout to finish: {total - updated} old replicas are pending '
                "termination..."), False
    if available < updated:
        return (f'Waiting for {kind} "{name}" rollout to finish: {available} of {updated} updated replicas are '
                "available..."), False
    return f'{kind} "{name}" successfully rolled out', True
