"""Kubernetes risk classification: which risk class a kubectl command is, and why.

    read         get/describe (not Secrets), logs, top, rollout status
    read-secret  get/describe of Secrets (values come back masked)
    write        scale, rollout restart|undo, apply, patch, label, annotate of namespaced objects
    exec         exec in a pod
    destructive  delete of namespaced objects
    admin        cordon/uncordon; any write or delete of cluster-scoped objects (namespaces, nodes,
                 PVs, CRDs, webhooks, ...) or RBAC; Secret reads across all namespaces; anything
                 but a plain read in kube-system, kube-public or kube-node-lease

The resource a command names is resolved here from a table of built-in types (so ``po``, ``pod``
and ``pods`` are one thing and cannot be confused with a custom resource). A type not in the table
is a custom resource: its verb decides, and the engine checks at run time that it is namespaced
before running a write (``classification_mismatch`` otherwise). Commands that would carry Secret
values (``apply``/``patch`` of Secrets) are refused: the broker never handles secret values.

``Classification.details`` carries ``verb`` (kubectl's, e.g. ``rollout restart``), ``resource``
(plural), ``namespace`` (``*`` for all namespaces, empty for cluster-scoped), ``subresource``,
``group`` and ``names`` for the policy and the journal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from broker.guard import Classification, Risk
from broker.guard.kubectl import parse_kubectl
from broker.guard.kubectl_command import KubectlCommand, refuse

DEFAULT_NAMESPACE = "default"
SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease"})
RBAC_GROUP = "rbac.authorization.k8s.io"
MAX_MANIFEST_OBJECTS = 50
_VERSION = re.compile(r"^v\d+((alpha|beta)\d+)?$")
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.:]{0,251}[a-z0-9])?$")
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class ResourceType:
    """A resource as the broker knows it before discovery; ``builtin`` types are never guesses."""

    plural: str
    group: str | None  # None: not known yet (a custom resource named without its group)
    kind: str = ""
    namespaced: bool | None = None  # None: unknown (custom resource)
    version: str | None = None
    builtin: bool = False

    @property
    def is_secret(self) -> bool:
        return self.builtin and self.group == "" and self.plural == "secrets"

    @property
    def qualified(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


def _b(plural: str, kind: str, group: str = "", namespaced: bool = True,
       *short: str) -> tuple[ResourceType, tuple[str, ...]]:
    return ResourceType(plural, group, kind, namespaced, builtin=True), short


_TABLE = [
    _b("pods", "Pod", "", True, "po"), _b("services", "Service", "", True, "svc"),
    _b("configmaps", "ConfigMap", "", True, "cm"), _b("secrets", "Secret", "", True),
    _b("serviceaccounts", "ServiceAccount", "", True, "sa"), _b("endpoints", "Endpoints", "", True, "ep"),
    _b("events", "Event", "", True, "ev"), _b("persistentvolumeclaims", "PersistentVolumeClaim", "", True, "pvc"),
    _b("replicationcontrollers", "ReplicationController", "", True, "rc"),
    _b("resourcequotas", "ResourceQuota", "", True, "quota"), _b("limitranges", "LimitRange", "", True, "limits"),
    _b("podtemplates", "PodTemplate", "", True), _b("namespaces", "Namespace", "", False, "ns"),
    _b("nodes", "Node", "", False, "no"), _b("persistentvolumes", "PersistentVolume", "", False, "pv"),
    _b("componentstatuses", "ComponentStatus", "", False, "cs"),
    _b("deployments", "Deployment", "apps", True, "deploy"), _b("replicasets", "ReplicaSet", "apps", True, "rs"),
    _b("statefulsets", "StatefulSet", "apps", True, "sts"), _b("daemonsets", "DaemonSet", "apps", True, "ds"),
    _b("controllerrevisions", "ControllerRevision", "apps", True),
    _b("jobs", "Job", "batch", True), _b("cronjobs", "CronJob", "batch", True, "cj"),
    _b("horizontalpodautoscalers", "HorizontalPodAutoscaler", "autoscaling", True, "hpa"),
    _b("ingresses", "Ingress", "networking.k8s.io", True, "ing"),
    _b("networkpolicies", "NetworkPolicy", "networking.k8s.io", True, "netpol"),
    _b("ingressclasses", "IngressClass", "networking.k8s.io", False),
    _b("poddisruptionbudgets", "PodDisruptionBudget", "policy", True, "pdb"),
    _b("roles", "Role", RBAC_GROUP, True), _b("rolebindings", "RoleBinding", RBAC_GROUP, True),
    _b("clusterroles", "ClusterRole", RBAC_GROUP, False),
    _b("clusterrolebindings", "ClusterRoleBinding", RBAC_GROUP, False),
    _b("storageclasses", "StorageClass", "storage.k8s.io", False, "sc"),
    _b("volumeattachments", "VolumeAttachment", "storage.k8s.io", False),
    _b("csidrivers", "CSIDriver", "storage.k8s.io", False), _b("csinodes", "CSINode", "storage.k8s.io", False),
    _b("customresourcedefinitions", "CustomResourceDefinition", "apiextensions.k8s.io", False, "crd", "crds"),
    _b("mutatingwebhookconfigurations", "MutatingWebhookConfiguration", "admissionregistration.k8s.io", False),
    _b("validatingwebhookconfigurations", "ValidatingWebhookConfiguration", "admissionregistration.k8s.io", False),
    _b("priorityclasses", "PriorityClass", "scheduling.k8s.io", False, "pc"),
    _b("leases", "Lease", "coordination.k8s.io", True), _b("endpointslices", "EndpointSlice", "discovery.k8s.io", True),
    _b("certificatesigningrequests", "CertificateSigningRequest", "certificates.k8s.io", False, "csr"),
    _b("apiservices", "APIService", "apiregistration.k8s.io", False),
    _b("runtimeclasses", "RuntimeClass", "node.k8s.io", False),
]
BUILTINS: tuple[ResourceType, ...] = tuple(t for t, _ in _TABLE)
_ALIASES: dict[str, ResourceType] = {}
for _type, _short in _TABLE:
    for _alias in (_type.plural, _type.kind.lower(), *_short):
        _ALIASES.setdefault(_alias, _type)


def resolve_type(token: str) -> ResourceType:
    """``po``, ``Pod``, ``deployments.apps``, ``deploy.v1.apps`` or ``widgets.example.com`` -> a type."""
    name, _, rest = token.lower().partition(".")
    version = None
    group = rest or None
    if rest:
        first, _, remainder = rest.partition(".")
        if _VERSION.match(first):
            version, group = first, remainder
    builtin = _ALIASES.get(name)
    if builtin is not None and (group is None or group == builtin.group):
        return ResourceType(builtin.plural, builtin.group, builtin.kind, builtin.namespaced, version, True)
    return ResourceType(name, group, version=version)


def type_for_kind(api_version: str, kind: str) -> ResourceType:
    """The resource type of a manifest object (``apps/v1``, ``Deployment``)."""
    group, _, version = api_version.rpartition("/")
    for t in BUILTINS:
        if t.kind == kind and t.group == group:
            return ResourceType(t.plural, t.group, t.kind, t.namespaced, version, True)
    return ResourceType(kind.lower(), group, kind, None, version)


@dataclass(frozen=True)
class ManifestObject:
    type: ResourceType
    name: str
    namespace: str  # "" when cluster-scoped
    body: dict[str, Any]


def manifest_objects(manifest: Any, namespace_flag: str | None) -> list[ManifestObject]:
    """Validate an ``apply`` manifest (an object, a list, or a ``kind: List``) and name its objects."""
    if manifest is None:
        raise refuse("kubectl apply needs the objects in the request's 'manifest' field (an object or a list).",
                     code="invalid_argument")
    items = manifest if isinstance(manifest, list) else [manifest]
    flat: list[Any] = []
    for item in items:
        if isinstance(item, dict) and item.get("kind") == "List" and isinstance(item.get("items"), list):
            flat.extend(item["items"])
        else:
            flat.append(item)
    if not flat or len(flat) > MAX_MANIFEST_OBJECTS:
        raise refuse(f"A manifest holds 1 to {MAX_MANIFEST_OBJECTS} objects.", code="invalid_manifest")
    out: list[ManifestObject] = []
    for index, obj in enumerate(flat):
        where = f"manifest object {index + 1}"
        if not isinstance(obj, dict):
            raise refuse(f"{where} is not an object.", code="invalid_manifest")
        api_version, kind, meta = obj.get("apiVersion"), obj.get("kind"), obj.get("metadata")
        if not isinstance(api_version, str) or not isinstance(kind, str) or not api_version or not kind:
            raise refuse(f"{where} needs apiVersion and kind.", code="invalid_manifest")
        if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not _NAME.match(meta["name"]):
            raise refuse(f"{where} needs a valid metadata.name (generateName is not supported).",
                         code="invalid_manifest")
        rtype = type_for_kind(api_version, kind)
        namespace = meta.get("namespace")
        if namespace is not None and (not isinstance(namespace, str) or not _NAMESPACE.match(namespace)):
            raise refuse(f"{where} has an invalid metadata.namespace.", code="invalid_manifest")
        if namespace and namespace_flag and namespace != namespace_flag:
            raise refuse(f"{where} is in namespace {namespace!r} but -n says {namespace_flag!r}.",
                         code="invalid_manifest")
        effective = "" if rtype.namespaced is False else (namespace or namespace_flag or DEFAULT_NAMESPACE)
        out.append(ManifestObject(rtype, meta["name"], effective, obj))
    return out


# --- classification ---
def classify_kubectl(argv: tuple[str, ...], manifest: Any = None) -> Classification:
    """Classify a kubectl argument list (and an apply manifest); raise ``BadRequest`` if it is refused."""
    cmd = parse_kubectl(argv)
    if cmd.verb != "apply" and manifest is not None:
        raise refuse("Only kubectl apply takes a manifest.", code="invalid_argument")
    if cmd.verb == "apply":
        return _classify_apply(cmd, manifest_objects(manifest, cmd.namespace))
    rtype = resolve_type(cmd.resource)
    namespace = _namespace_detail(cmd, rtype)
    risk, reason = _risk(cmd, rtype, namespace)
    return _result(risk, reason, cmd, rtype, namespace)


def _namespace_detail(cmd: KubectlCommand, rtype: ResourceType) -> str:
    if rtype.namespaced is False:
        return ""
    if cmd.all_namespaces:
        return "*"
    return cmd.namespace or DEFAULT_NAMESPACE


def _risk(cmd: KubectlCommand, rtype: ResourceType, namespace: str) -> tuple[Risk, str]:
    verb, what = cmd.verb_phrase, rtype.qualified
    system = namespace in SYSTEM_NAMESPACES
    if verb in ("get", "describe"):
        if rtype.is_secret:
            if namespace == "*":
                return Risk.ADMIN, "reads Secrets in every namespace, kube-system included (values are masked)"
            if system:
                return Risk.ADMIN, f"reads Secrets in {namespace} (values are masked)"
            return Risk.READ_SECRET, "reads Secret objects (values are masked)"
        return Risk.READ, f"{verb} {what} only reads" + (f" (in {namespace})" if system else "")
    if verb in ("logs", "top", "rollout status"):
        return Risk.READ, f"{verb} only reads" + (f" (in {namespace})" if system else "")
    if verb in ("cordon", "uncordon"):
        return Risk.ADMIN, f"{verb} changes whether the cluster schedules pods on a node"
    if verb in ("patch",) and rtype.is_secret:
        raise refuse("Patching Secrets is refused: the broker never carries secret values in a command. "
                     "Change Secrets with your secret store.", code="secret_values_in_command")
    if verb == "exec":
        if system:
            return Risk.ADMIN, f"runs a command in a pod in {namespace}"
        return Risk.EXEC, "runs a command inside a pod (it can read everything the pod can)"
    scope = _admin_scope(rtype, namespace)
    if verb == "delete":
        if scope:
            return Risk.ADMIN, f"deletes {what}: {scope}"
        if cmd.all or cmd.selector:
            which = "the selector matches" if cmd.selector else "the namespace has"
            return Risk.DESTRUCTIVE, f"deletes every {what} {which}"
        return Risk.DESTRUCTIVE, f"deletes {what} {', '.join(cmd.names)}"
    if scope:
        return Risk.ADMIN, f"{verb} changes {what}: {scope}"
    custom = "" if rtype.builtin else " (a custom resource: it must be namespaced to run)"
    return Risk.WRITE, f"{verb} changes {what}{custom}"


def _admin_scope(rtype: ResourceType, namespace: str) -> str:
    """Why a change to this type/namespace is an administrator's change, or ''."""
    if rtype.group == RBAC_GROUP:
        return "RBAC decides who may do what"
    if rtype.namespaced is False:
        return "it is cluster-scoped"
    if namespace in SYSTEM_NAMESPACES:
        return f"{namespace} runs the cluster itself"
    return ""


def _subresource(cmd: KubectlCommand) -> str:
    """As Kubernetes RBAC names them: ``pods/log``, ``pods/exec``, ``deployments/scale``."""
    return {"logs": "log", "exec": "exec", "scale": "scale"}.get(cmd.verb, "")


def _result(risk: Risk, reason: str, cmd: KubectlCommand, rtype: ResourceType, namespace: str) -> Classification:
    group = "metrics.k8s.io" if cmd.verb == "top" else rtype.group if rtype.group is not None else ""
    details = {"verb": cmd.verb_phrase, "resource": rtype.plural, "namespace": namespace,
               "subresource": _subresource(cmd), "group": group, "names": list(cmd.names)}
    if not rtype.builtin:
        details["scope"] = "unknown"
    return Classification(risk=risk, reason=reason, language="kubernetes",
                          statement=f"{cmd.verb_phrase} {rtype.qualified}".strip(), details=details)


def _classify_apply(cmd: KubectlCommand, objects: list[ManifestObject]) -> Classification:
    if any(obj.type.is_secret for obj in objects):
        raise refuse("Applying Secrets is refused: the broker never carries secret values in a command "
                     "(nor journals them). Create Secrets with your secret store.", code="secret_values_in_command")
    risk, reason = Risk.WRITE, ""
    for obj in objects:
        scope = _admin_scope(obj.type, obj.namespace)
        if scope:
            risk, reason = Risk.ADMIN, f"applies {obj.type.kind} {obj.name}: {scope}"
            break
    if not reason:
        kinds = sorted({f"{o.type.kind}/{o.name}" for o in objects})
        custom = any(not o.type.builtin for o in objects)
        reason = f"server-side apply of {', '.join(kinds[:5])}{' …' if len(kinds) > 5 else ''}" + \
                 (" (custom resources must be namespaced to run)" if custom else "")
    resources = sorted({o.type.plural for o in objects})
    namespaces = sorted({o.namespace for o in objects})
    groups = sorted({o.type.group or "" for o in objects})
    details = {"verb": "apply", "resource": ",".join(resources), "namespace": ",".join(namespaces),
               "subresource": "", "group": ",".join(groups), "names": [o.name for o in objects]}
    if any(not o.type.builtin for o in objects):
        details["scope"] = "unknown"
    return Classification(risk=risk, reason=reason, language="kubernetes",
                          statement=f"apply {','.join(resources)}", details=details)
