"""From the type a command names to the API resource the cluster serves, via discovery.

The guard classified the command from its own table of built-in types; here the cluster's
discovery picks the served version. The two must agree: a built-in type resolves only within its
own group, a name the guard did not know must not turn out to be a Secret or an RBAC type, and a
write to such a type runs only if it is namespaced (the guard assumed so).
Otherwise the command is refused with ``classification_mismatch`` rather than run under the wrong
risk class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubernetes.dynamic.resource import Resource, ResourceList

from broker.guard.kubernetes import RBAC_GROUP, ResourceType
from broker.problems import BadRequest
from broker.targets.kubernetes._connection import Cluster

SENSITIVE = frozenset({("", "secrets")})
READ_VERBS = frozenset({"get", "describe", "logs", "top", "rollout status"})


@dataclass(frozen=True)
class Resolved:
    resource: Resource
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool

    @property
    def qualified_kind(self) -> str:
        """kubectl's ``deployment.apps`` / ``pod`` spelling for messages and ``-o name``."""
        return f"{self.kind.lower()}.{self.group}" if self.group else self.kind.lower()

    def operation(self, verb: str, namespace: str | None, name: str | None = None,
                  subresource: str = "") -> dict[str, Any]:
        op = {"group": self.group, "version": self.version, "resource": self.plural, "verb": verb,
              "namespace": namespace or "", "name": name or ""}
        if subresource:
            op["subresource"] = subresource
        return op


def resolve(cluster: Cluster, rtype: ResourceType, verb: str) -> Resolved:
    """The served resource for a type; refuses when discovery and the classification disagree."""
    matches = [r for r in _served(cluster) if _matches(r, rtype)]
    if not matches:  # a CRD installed since the last discovery: look again, once
        matches = [r for r in _served(cluster, refresh=True) if _matches(r, rtype)]
    if not matches:
        where = f" in group {rtype.group}" if rtype.group else ""
        raise BadRequest(f"The cluster serves no resource type {rtype.qualified!r}{where}.",
                         code="unknown_resource_type")
    groups = {r.group for r in matches}
    if rtype.builtin:
        matches = [r for r in matches if r.group == rtype.group]
    elif len(groups) > 1:
        raise BadRequest(f"{rtype.plural!r} is served by several groups ({', '.join(sorted(groups))}); qualify it, "
                         f"e.g. {rtype.plural}.{sorted(groups)[0]}.", code="ambiguous_resource_type")
    if rtype.version:
        matches = [r for r in matches if r.api_version == rtype.version] or matches
    chosen = next((r for r in matches if r.preferred), None) or sorted(matches, key=lambda r: r.api_version)[-1]
    resolved = Resolved(chosen, chosen.group, chosen.api_version, chosen.name, chosen.kind, bool(chosen.namespaced))
    if not rtype.builtin:
        _check_unlisted(resolved, verb)
    return resolved


def _check_unlisted(resolved: Resolved, verb: str) -> None:
    """A type the guard did not know was classified by its verb alone, as a namespaced custom resource."""
    if (resolved.group, resolved.plural) in SENSITIVE or resolved.group == RBAC_GROUP:
        raise BadRequest(f"{resolved.plural} is a sensitive built-in type; name it the way the broker knows it "
                         "(its plural name) so it is classified as such.", code="classification_mismatch")
    if verb not in READ_VERBS and not resolved.namespaced:
        raise BadRequest(f"{resolved.plural}.{resolved.group} is cluster-scoped, but the broker classified this "
                         f"{verb} as a namespaced write; it will not run it under the wrong risk class.",
                         code="classification_mismatch")


def resolve_kind(cluster: Cluster, api_version: str, kind: str) -> Resolved:
    """The resource for a manifest object's apiVersion and kind."""
    group, _, version = api_version.rpartition("/")
    matches = [r for r in _served(cluster) if r.group == group and r.api_version == version and r.kind == kind]
    if not matches:
        matches = [r for r in _served(cluster, refresh=True)
                   if r.group == group and r.api_version == version and r.kind == kind]
    if not matches:
        raise BadRequest(f"The cluster serves no {kind} in {api_version}.", code="unknown_resource_type")
    r = matches[0]
    return Resolved(r, r.group, r.api_version, r.name, r.kind, bool(r.namespaced))


def _served(cluster: Cluster, refresh: bool = False) -> list[Resource]:
    """Every resource the cluster serves (discovery, cached by the dynamic client)."""
    with cluster.lock:
        if refresh:
            cluster.dynamic.resources.invalidate_cache()
        return [r for r in cluster.dynamic.resources.search()
                if isinstance(r, Resource) and not isinstance(r, ResourceList) and "/" not in r.name]


def _matches(r: Resource, rtype: ResourceType) -> bool:
    if rtype.group is not None and r.group != rtype.group:
        return False
    token = rtype.plural
    return (r.name == token or (r.singular_name or "") == token or token in (r.short_names or [])
            or r.kind.lower() == token)
