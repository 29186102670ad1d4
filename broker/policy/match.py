"""Does a rule's ``when`` (or ``unless``) hold for this caller, target and command, and if not, why not.

The "why not" is the trace a person reads in ``policy explain`` and in the journal, so each miss
names the first condition that failed in words, not codes. Target names and Kubernetes fields are
glob patterns (``prod-*``, ``kube-*``); everything else is compared exactly. Kubernetes resources
follow RBAC's convention: ``pods`` is the resource itself, ``pods/exec`` or ``pods/*`` a subresource.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from broker.catalog import Target
from broker.guard import Classification
from broker.guard.languages import KUBECTL
from broker.identity import Principal
from broker.policy.model import KubernetesMatch, Match


def _any_glob(value: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatchcase(value, pattern) for pattern in patterns)


def explain_miss(match: Match, principal: Principal, target: Target, command: Classification) -> str | None:
    """None when every condition holds, else the first one that does not, in words."""
    return (_identity_miss(match, principal) or _target_miss(match, target)
            or _command_miss(match, command))


def _identity_miss(match: Match, principal: Principal) -> str | None:
    if match.roles and not principal.roles & set(match.roles):
        return f"caller has none of the roles {list(match.roles)}"
    if match.groups and not principal.groups & set(match.groups):
        return f"caller is in none of the groups {list(match.groups)}"
    if match.tenants and principal.tenant_id not in match.tenants:
        return f"caller's tenant {principal.tenant_id} is not listed"
    if match.object_ids and principal.object_id not in match.object_ids:
        return "caller's object id is not listed"
    if match.app_ids and principal.app_id not in match.app_ids:
        return "caller's application id is not listed"
    if match.kinds and principal.kind not in match.kinds:
        return f"caller is a {principal.kind}, not {' or '.join(match.kinds)}"
    return None


def _target_miss(match: Match, target: Target) -> str | None:
    if match.targets and not _any_glob(target.name, match.targets):
        return f"target {target.name} is not in {list(match.targets)}"
    if match.engines and target.engine not in match.engines:
        return f"target engine {target.engine} is not in {list(match.engines)}"
    for key, values in match.labels.items():
        actual = target.labels.get(key)
        if actual not in values:
            wanted = values[0] if len(values) == 1 else list(values)
            return f"target label {key}={actual if actual is not None else '(unset)'}, not {wanted}"
    return None


ROWS_CHANGED = "rows_changed"
"""Classification detail: the rows a change's trial run touched (set only after the trial)."""


def _command_miss(match: Match, command: Classification) -> str | None:
    if match.risk and command.risk.value not in match.risk:
        return f"risk {command.risk.value} is not in {list(match.risk)}"
    if match.rows_changed_over is not None:
        rows = command.details.get(ROWS_CHANGED)
        if rows is None:
            return "the change's impact is not measured yet (rows_changed_over is judged after its trial run)"
        if int(rows) <= match.rows_changed_over:
            return f"the change touches {rows} row(s), not more than {match.rows_changed_over}"
    if match.kubernetes is not None:
        return _kubernetes_miss(match.kubernetes, command)
    return None


def _kubernetes_miss(match: KubernetesMatch, command: Classification) -> str | None:
    if command.language != KUBECTL.kind:
        return f"the command is {command.language}, not a Kubernetes command"
    details = command.details
    verb = str(details.get("verb") or "")
    resource = str(details.get("resource") or "")
    subresource = str(details.get("subresource") or "")
    namespace = str(details.get("namespace") or "")
    if match.verbs and not _any_glob(verb, match.verbs):
        return f"verb {verb or '(none)'} is not in {list(match.verbs)}"
    if match.resources:
        full = f"{resource}/{subresource}" if subresource else resource
        plain = [p for p in match.resources if "/" not in p]
        nested = [p for p in match.resources if "/" in p]
        # As in Kubernetes RBAC: "pods" names the pods resource itself, "pods/exec" (or "pods/*") a subresource.
        if not ((not subresource and _any_glob(resource, tuple(plain))) or _any_glob(full, tuple(nested))):
            return f"resource {full or '(none)'} is not in {list(match.resources)}"
    if match.subresources and not _any_glob(subresource, match.subresources):
        return f"subresource {subresource or '(none)'} is not in {list(match.subresources)}"
    if match.namespaces and not namespace:
        return "the request is cluster-scoped (no namespace)"
    if match.namespaces and not _any_glob(namespace, match.namespaces):
        return f"namespace {namespace} is not in {list(match.namespaces)}"
    return None
