"""Kubernetes through the official ``kubernetes`` client: kubectl-shaped commands (parsed and
classified by ``broker.guard.kubernetes``) run with the broker's credential for the cluster.

Arbitrary resources, CRDs included, go through the dynamic client and discovery; logs and exec
use the typed core API. Reads come back in kubectl's shapes (the object or a ``List`` for
``-o json|yaml``, kubectl's columns for the default and ``-o wide``, text for ``-o name``, logs
and ``describe``); exec returns stdout, stderr and the exit code. Writes can be previewed as a
server-side dry-run diff (``preview``) for approvers.

This module never decides whether a command may run (the policy did), but it is the second wall:
a read-only target or a read-only classification never runs a changing verb or exec.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import websocket
from kubernetes import client as k8s

from broker.catalog import Target
from broker.guard import Classification
from broker.guard.kubectl import parse_kubectl
from broker.guard.kubectl_command import KubectlCommand
from broker.guard.kubernetes import DEFAULT_NAMESPACE, classify_kubectl, resolve_type
from broker.guard.languages import KUBECTL
from broker.problems import BadRequest, BrokerError, CommandFailed
from broker.secrets import SecretValue
from broker.targets.base import Command, DocumentResult, ExecutionLimits
from broker.targets.kubernetes import _read, _rollout, _write
from broker.targets.kubernetes._connection import AKS_SCOPE, Connections
from broker.targets.kubernetes._context import Ctx
from broker.targets.kubernetes._errors import api_error
from broker.targets.kubernetes._exec import exec_in_pod
from broker.targets.kubernetes._masking import Placeholders, mask_structure
from broker.targets.kubernetes._resolve import resolve
from broker.targets.kubernetes._secrets import SecretValues

__all__ = ["AKS_SCOPE", "READ_VERBS", "KubernetesEngine"]

READ_VERBS = frozenset({"get", "describe", "logs", "top", "rollout status"})

_CHANGES: dict[str, _write.Planner] = {
    "delete": _write.delete, "scale": _write.scale, "apply": _write.apply, "patch": _write.patch,
    "label": _write.label, "annotate": _write.label, "cordon": _write.cordon, "uncordon": _write.cordon,
    "rollout restart": _rollout.restart, "rollout undo": _rollout.undo,
}


class KubernetesEngine:
    language = KUBECTL.name
    dialect = ""  # kubectl has no dialects

    def __init__(self, *, workdir: Path | None = None) -> None:
        self._connections = Connections(workdir)
        self._secrets = SecretValues()
        if websocket.getdefaulttimeout() is None:
            # The client opens exec streams without a timeout; a silent server must not hang a worker.
            websocket.setdefaulttimeout(30)

    def classify(self, command: Command) -> Classification:
        return classify_kubectl(command.argv, command.manifest)

    def resolve(self, target: Target, command: Command, classification: Classification,
                secret: Callable[[], SecretValue]) -> Classification:
        return classification  # the static classification is all there is for this engine

    def execute(self, target: Target, command: Command, secret: SecretValue, limits: ExecutionLimits,
                *, read_only: bool) -> DocumentResult:
        cmd = parse_kubectl(command.argv)
        if read_only and cmd.verb_phrase not in READ_VERBS:
            raise CommandFailed(f"Target {target.name} is read-only here: kubectl {cmd.verb_phrase} does not run.",
                                code="read_only_violation")
        ctx = self._context(target, secret, limits)
        try:
            result = self._run(ctx, cmd, command.manifest)
        except BrokerError as failure:
            failure.operations = list(ctx.operations)  # journaled with the error
            raise
        result.operations = ctx.operations
        return result

    def preview(self, target: Target, command: Command, secret: SecretValue,
                limits: ExecutionLimits) -> DocumentResult | None:
        """What a changing command would do, as a server-side dry run (rendered as a diff after masking).

        None for commands without a dry run (reads, exec). Nothing is persisted.
        """
        cmd = parse_kubectl(command.argv)
        planner = _CHANGES.get(cmd.verb_phrase)
        if planner is None:
            return None
        ctx = self._context(target, secret, limits)
        known = self._secrets.for_namespace(ctx, self._scope(ctx, cmd))
        result = _write.preview(planner(ctx, cmd, command.manifest, True))
        result.operations, result.known = ctx.operations, known
        return result

    def mask_structure(self, value: Any, masker: Placeholders, counts: Counter[str]) -> Any:
        """Structural masking after the generic scan: Secret values, secret-named env vars."""
        return mask_structure(value, masker, counts)

    def unavailable_reason(self) -> str | None:
        return None  # pure-Python client: runs wherever the broker runs

    def check(self, target: Target, secret: SecretValue) -> None:
        cluster = self._connections.get(target, secret)
        try:
            k8s.VersionApi(cluster.api).get_code(_request_timeout=5)
        except Exception as exc:
            raise api_error(exc, target.name) from exc

    def close(self) -> None:
        self._connections.close()

    def _context(self, target: Target, secret: SecretValue, limits: ExecutionLimits) -> Ctx:
        return Ctx(self._connections.get(target, secret), target, limits)

    @staticmethod
    def _scope(ctx: Ctx, cmd: KubectlCommand) -> str | None:
        """The namespace whose Secrets the output may carry: None (all) for -A, cluster-scoped types,
        apply (its objects name their namespaces) and verbs on nodes."""
        if cmd.all_namespaces or cmd.verb in ("apply", "cordon", "uncordon") or cmd.action == "nodes":
            return None
        if cmd.resource:
            try:
                if not resolve(ctx.cluster, resolve_type(cmd.resource), cmd.verb_phrase).namespaced:
                    return None
            except BadRequest:
                return None
        return cmd.namespace or DEFAULT_NAMESPACE

    def _run(self, ctx: Ctx, cmd: KubectlCommand, manifest: Any) -> DocumentResult:
        """Run the command. Before anything runs, the Secret values its output may carry are read
        (exec and logs: the pod's, fresh; otherwise the namespace's, cached), so that a failure to
        read them stops the command instead of an answer that could not be masked."""
        verb = cmd.verb_phrase
        if verb == "exec":
            return exec_in_pod(ctx, cmd, self._secrets)
        if verb == "logs":
            return _read.logs(ctx, cmd, self._secrets)
        known = self._secrets.for_namespace(ctx, self._scope(ctx, cmd))
        result = self._run_other(ctx, cmd, manifest)
        result.known = known
        return result

    @staticmethod
    def _run_other(ctx: Ctx, cmd: KubectlCommand, manifest: Any) -> DocumentResult:
        verb = cmd.verb_phrase
        if verb == "get":
            return _read.get(ctx, cmd)
        if verb == "describe":
            return _read.describe(ctx, cmd)
        if verb == "top":
            return _read.top(ctx, cmd)
        if verb == "rollout status":
            return _rollout.status(ctx, cmd)
        changes = _CHANGES[verb](ctx, cmd, manifest, False)
        return _write.result(changes, with_objects=verb in ("apply", "patch"))
