"""The kubectl verbs, one builder each: positional arguments and flag values -> ``KubectlCommand``.

Every value is checked here (names, namespaces, selectors, durations, label keys); anything that is
not what Kubernetes itself would accept is refused with ``invalid_argument`` before it goes near a
cluster.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import yaml

from broker.guard.kubectl_command import OUTPUTS, PATCH_TYPES, ROLLOUT_ACTIONS, KubectlCommand, refuse

_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.:@-]{0,251}[A-Za-z0-9])?$")
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_RESOURCE = re.compile(r"^[a-z][a-z0-9-]{0,62}(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?){0,10}$")
_LABEL_SELECTOR = re.compile(r"^[A-Za-z0-9_./=!,()\s-]{1,1024}$")
_FIELD_SELECTOR = re.compile(r"^[A-Za-z0-9_./=!,-]{1,1024}$")
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)?$")
Builder = Callable[[list[str], dict[str, Any], tuple[str, ...]], KubectlCommand]

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


# --- value checks ---
def _name(value: str, what: str = "name") -> str:
    if not _NAME.match(value):
        raise refuse(f"{value!r} is not a valid Kubernetes {what}.", code="invalid_argument")
    return value


def _namespace(values: dict[str, Any]) -> str | None:
    ns = values.get("namespace")
    if ns is None:
        return None
    if not _NAMESPACE.match(ns):
        raise refuse(f"{ns!r} is not a valid namespace name.", code="invalid_argument")
    if values.get("all_namespaces"):
        raise refuse("Give either -n/--namespace or -A/--all-namespaces, not both.", code="invalid_argument")
    return ns


def _resource(value: str) -> str:
    lowered = value.lower()
    if lowered == "all" or "," in lowered:
        raise refuse("Name one resource type per command ('all' and comma-separated lists are not supported), "
                     "so the policy can judge it.", code="invalid_argument")
    if not _RESOURCE.match(lowered):
        raise refuse(f"{value!r} is not a resource type.", code="invalid_argument")
    return lowered


def _int(values: dict[str, Any], key: str, flag: str, minimum: int = 0, maximum: int = 1_000_000) -> int | None:
    raw = values.get(key)
    if raw is None:
        return None
    try:
        number = int(raw)
    except ValueError:
        raise refuse(f"{flag} must be a whole number, not {raw!r}.", code="invalid_argument") from None
    if not minimum <= number <= maximum:
        raise refuse(f"{flag} must be between {minimum} and {maximum}.", code="invalid_argument")
    return number


def _duration(values: dict[str, Any], key: str, flag: str) -> int | None:
    raw = values.get(key)
    if raw is None:
        return None
    m = _DURATION.match(raw)
    if not raw or not m or not any(m.groups()):
        raise refuse(f"{flag} takes a duration such as 30s, 5m or 1h30m, not {raw!r}.", code="invalid_argument")
    hours, minutes, seconds = (int(g or 0) for g in m.groups())
    return hours * 3600 + minutes * 60 + seconds


def _selectors(values: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if values.get("selector") is not None:
        if not _LABEL_SELECTOR.match(values["selector"]):
            raise refuse("The label selector has characters a selector cannot have.", code="invalid_argument")
        out["selector"] = values["selector"]
    if values.get("field_selector") is not None:
        if not _FIELD_SELECTOR.match(values["field_selector"]):
            raise refuse("The field selector has characters a selector cannot have.", code="invalid_argument")
        out["field_selector"] = values["field_selector"]
    return out


def _targets(positional: list[str], *, verb: str, need_name: bool = False,
             many: bool = True) -> tuple[str, tuple[str, ...]]:
    """``TYPE [NAME...]`` or ``TYPE/NAME [TYPE/NAME...]`` (one type) -> (resource, names)."""
    if not positional:
        raise refuse(f"kubectl {verb} needs a resource type, e.g. 'pods'.", code="invalid_argument")
    if "/" in positional[0]:
        pairs = [p.split("/", 1) for p in positional]
        if any(len(p) != 2 or "/" in p[1] for p in pairs):
            raise refuse("Write TYPE/NAME for every object, or TYPE NAME...", code="invalid_argument")
        types = {_resource(t) for t, _ in pairs}
        if len(types) != 1:
            raise refuse("Name one resource type per command.", code="invalid_argument")
        resource, names = types.pop(), tuple(_name(n) for _, n in pairs)
    else:
        resource, names = _resource(positional[0]), tuple(_name(n) for n in positional[1:])
        if any("/" in n for n in positional[1:]):
            raise refuse("Write TYPE/NAME for every object, or TYPE NAME...", code="invalid_argument")
    if need_name and not names:
        raise refuse(f"kubectl {verb} needs the name of the object.", code="invalid_argument")
    if not many and len(names) > 1:
        raise refuse(f"kubectl {verb} takes one object.", code="invalid_argument")
    if len(names) > 50:
        raise refuse("At most 50 objects per command.", code="invalid_argument")
    return resource, names


def _no_extra(positional: list[str], verb: str) -> None:
    if positional:
        raise refuse(f"Unexpected argument {positional[0]!r} for kubectl {verb}.", code="invalid_argument")


def _selection(values: dict[str, Any], names: tuple[str, ...], verb: str) -> None:
    """delete/label/annotate act on named objects, or a selector, or --all; exactly one of them."""
    chosen = sum([bool(names), values.get("selector") is not None, bool(values.get("all"))])
    if chosen != 1:
        raise refuse(f"kubectl {verb} needs exactly one of: object names, -l SELECTOR, or --all.",
                     code="invalid_argument")


def _output(values: dict[str, Any]) -> str:
    output = values.get("output", "")
    if output and output not in OUTPUTS:
        raise refuse(f"-o {output} is not supported; use one of {', '.join(OUTPUTS)}.", code="unsupported_flag",
                     supported_outputs=list(OUTPUTS))
    return output


# --- one builder per verb ---
def _by_name_everywhere(names: tuple[str, ...], values: dict[str, Any]) -> None:
    if names and values.get("all_namespaces"):
        raise refuse("An object cannot be fetched by name across all namespaces; give -n NAMESPACE.",
                     code="invalid_argument")


def _get(positional: list[str], values: dict[str, Any], _: tuple[str, ...]) -> KubectlCommand:
    resource, names = _targets(positional, verb="get")
    _by_name_everywhere(names, values)
    return KubectlCommand("get", resource=resource, names=names, namespace=_namespace(values),
                          all_namespaces=bool(values.get("all_namespaces")), output=_output(values),
                          show_labels=bool(values.get("show_labels")),
                          ignore_not_found=bool(values.get("ignore_not_found")), **_selectors(values))


def _describe(positional: list[str], values: dict[str, Any], _: tuple[str, ...]) -> KubectlCommand:
    resource, names = _targets(positional, verb="describe")
    _by_name_everywhere(names, values)
    return KubectlCommand("describe", resource=resource, names=names, namespace=_namespace(values),
                          all_namespaces=bool(values.get("all_namespaces")), **_selectors(values))


def _logs(positional: list[str], values: dict[str, Any], _: tuple[str, ...]) -> KubectlCommand:
    selectors = _selectors(values)
    if len(positional) > 2:
        raise refuse("kubectl logs takes one pod (POD, pod/POD, or POD CONTAINER).", code="invalid_argument")
    names: tuple[str, ...] = ()
    container = values.get("container")
    if positional:
        first = positional[0]
        if "/" in first:
            kind, _, pod = first.partition("/")
            if _resource(kind) not in ("pod", "pods", "po"):
                raise refuse("kubectl logs through the broker reads pods: give pod/NAME or -l SELECTOR.",
                             code="invalid_argument")
            first = pod
        names = (_name(first),)
        if len(positional) == 2:
            if container is not None:
                raise refuse("Give the container either as -c or as the second argument.", code="invalid_argument")
            container = positional[1]
    if bool(names) == ("selector" in selectors):
        raise refuse("kubectl logs needs a pod name or -l SELECTOR (one of them).", code="invalid_argument")
    if container is not None and not _NAMESPACE.match(container):
        raise refuse(f"{container!r} is not a valid container name.", code="invalid_argument")
    return KubectlCommand("logs", resource="pods", names=names, namespace=_namespace(values), container=container,
                          tail=_int(values, "tail", "--tail", minimum=-1, maximum=100_000),
                          since_seconds=_duration(values, "since", "--since"),
                          previous=bool(values.get("previous")), timestamps=bool(values.get("timestamps")),
                          all_containers=bool(values.get("all_containers")), **selectors)


def _top(positional: list[str], values: dict[str, Any], _: tuple[str, ...]) -> KubectlCommand:
    if not positional or positional[0] not in ("pod", "pods", "po", "node", "nodes", "no"):
        raise refuse("kubectl top takes 'pods' or 'nodes'.", code="invalid_argument")
    action = "nodes" if positional[0].startswith("no") else "pods"
    names = tuple(_name(n) for n in positional[1:2])
    if len(positional) > 2:
        raise refuse("kubectl top takes at most one name.", code="invalid_argument")
    if action == "nodes" and (values.get("namespace") or values.get("all_namespaces") or values.get("containers")):
        raise refuse("kubectl top nodes takes no namespace or --containers.", code="invalid_argument")
    return KubectlCommand("top", action=action, resource=action, names=names, namespace=_namespace(values),
                          all_namespaces=bool(values.get("all_namespaces")),
                          containers=bool(values.get("containers")), **_selectors(values))


def _exec(positional: list[str], values: dict[str, Any], command: tuple[str, ...]) -> KubectlCommand:
    if len(positional) != 1:
        raise refuse("kubectl exec takes one pod, then -- and the command: exec POD -- COMMAND [ARGS...].",
                     code="invalid_argument")
    pod = positional[0]
    if "/" in pod:
        kind, _, pod = pod.partition("/")
        if _resource(kind) not in ("pod", "pods", "po"):
            raise refuse("kubectl exec through the broker runs in a named pod (pod/NAME).", code="invalid_argument")
    if not command:
        raise refuse("kubectl exec needs the command after --, e.g. exec POD -- ls /.", code="invalid_argument")
    container = values.get("container")
    if container is not None and not _NAMESPACE.match(container):
        raise refuse(f"{container!r} is not a valid container name.", code="invalid_argument")
    return KubectlCommand("exec", resource="pods", names=(_name(pod),), namespace=_namespace(values),
                          container=container, command=command)


def _delete(positional: list[str], values: dict[str, Any], _: tuple[str, ...]) -> KubectlCommand:
    resource, names = _targets(positional, verb="delete")
    _selection(values, names, "delete")
    cascade = values.get("cascade", "background")
    if cascade not in ("background", "foreground", "orphan"):
        raise refuse("--cascade takes background, foreground or orphan.", code="invalid_argument")
    return KubectlCommand("delete", resource=resource, names=names, namespace=_namespace(values),
                          all=bool(values.get("all")), grace_period=_int(values, "grace_period", "--grace-period",
                                                                          minimum=1, maximum=86_400),
                          cascade=cascade, ignore_not_found=bool(values.get("ignore_not_found")),
                          **_selectors(values))


def _scale(positional: list[str], values: dict[str, Any], _: tuple[str, ...]) -> KubectlCommand:
    resource, names = _targets(positional, verb="scale", need_name=True)
    replicas = _int(values, "replicas", "--replicas", maximum=10_000)
    if replicas is None:
        raise refuse("kubectl scale needs --replicas=N.", code="invalid_argument")
    return KubectlCommand("scale", resource=resource, names=names, namespace=_namespace(values), replicas=replicas,
                          current_replicas=_int(values, "current_replicas", "--current-replicas", maximum=10_000))


def _rollout(positional: list[str], values: dict[str, Any], _: tuple[str, ...]) -> KubectlCommand:
    if not positional or positional[0] not in ROLLOUT_ACTIONS:
        raise refuse(f"kubectl rollout takes one of: {', '.join(ROLLOUT_ACTIONS)}.", code="unsupported_verb",
                     supported_actions=list(ROLLOUT_ACTIONS))
    action = positional[0]
    resource, names = _targets(positional[1:], verb=f"rollout {action}", need_name=True)
    if action != "undo" and values.get("to_revision") is not None:
        raise refuse("--to-revision goes with rollout undo.", code="invalid_argument")
    if action != "status" and (values.get("timeout") is not None or values.get("watch")):
        raise refuse("--timeout and --watch go with rollout status.", code="invalid_argument")
    return KubectlCommand("rollout", action=action, resource=resource, names=names, namespace=_namespace(values),
                          to_revision=_int(values, "to_revision", "--to-revision", minimum=1),
                          timeout_seconds=_duration(values, "timeout", "--timeout"), watch=bool(values.get("watch")))


def _apply(positional: list[str], values: dict[str, Any], _: tuple[str, ...]) -> KubectlCommand:
    _no_extra(positional, "apply")
    return KubectlCommand("apply", namespace=_namespace(values), force_conflicts=bool(values.get("force_conflicts")))


def _patch(positional: list[str], values: dict[str, Any], _: tuple[str, ...]) -> KubectlCommand:
    resource, names = _targets(positional, verb="patch", need_name=True, many=False)
    raw = values.get("patch")
    if raw is None:
        raise refuse("kubectl patch needs -p/--patch with a JSON (or YAML) patch.", code="invalid_argument")
    try:
        body = json.loads(raw)
    except json.JSONDecodeError:
        try:
            body = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise refuse("The patch is neither JSON nor YAML.", code="invalid_argument") from None
    patch_type = values.get("patch_type", "strategic")
    if patch_type not in PATCH_TYPES:
        raise refuse("--type takes strategic, merge or json.", code="invalid_argument")
    if not isinstance(body, list if patch_type == "json" else dict):
        raise refuse("A json patch is a list of operations; a strategic or merge patch is an object.",
                     code="invalid_argument")
    return KubectlCommand("patch", resource=resource, names=names, namespace=_namespace(values), patch=body,
                          patch_type=patch_type)


def _metadata(verb: str) -> Builder:
    def build(positional: list[str], values: dict[str, Any], _: tuple[str, ...]) -> KubectlCommand:
        changes: dict[str, str | None] = {}
        objects: list[str] = []
        for arg in positional:
            if arg.endswith("-") and "=" not in arg:
                changes[_key(arg[:-1])] = None
            elif "=" in arg and not arg.startswith("="):
                key, _, value = arg.partition("=")
                if verb == "label" and not _LABEL_VALUE.match(value):
                    raise refuse(f"{value!r} is not a valid label value.", code="invalid_argument")
                changes[_key(key)] = value
            else:
                objects.append(arg)
        if not changes:
            raise refuse(f"kubectl {verb} needs KEY=VALUE (set) or KEY- (remove).", code="invalid_argument")
        resource, names = _targets(objects, verb=verb)
        _selection(values, names, verb)
        return KubectlCommand(verb, resource=resource, names=names, namespace=_namespace(values),
                              all=bool(values.get("all")), changes=changes, overwrite=bool(values.get("overwrite")),
                              **_selectors(values))
    return build


def _key(key: str) -> str:
    if not _LABEL_KEY.match(key):
        raise refuse(f"{key!r} is not a valid label or annotation key.", code="invalid_argument")
    return key


def _node_switch(verb: str) -> Builder:
    def build(positional: list[str], values: dict[str, Any], _: tuple[str, ...]) -> KubectlCommand:
        if not positional:
            raise refuse(f"kubectl {verb} needs a node name.", code="invalid_argument")
        names = tuple(_name(p.split("/", 1)[1] if p.startswith(("node/", "nodes/")) else p) for p in positional)
        return KubectlCommand(verb, resource="nodes", names=names)
    return build


BUILDERS: dict[str, Builder] = {
    "get": _get, "describe": _describe, "logs": _logs, "top": _top, "exec": _exec, "delete": _delete,
    "scale": _scale, "rollout": _rollout, "apply": _apply, "patch": _patch, "label": _metadata("label"),
    "annotate": _metadata("annotate"), "cordon": _node_switch("cordon"), "uncordon": _node_switch("uncordon"),
}
