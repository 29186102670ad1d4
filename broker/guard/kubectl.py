"""The kubectl grammar the broker accepts: an argument list (never a shell line) parsed into a
``KubectlCommand``, or refused with a precise ``BadRequest``.

Only the verbs and flags agents need are understood; anything else is refused with the list of
what is supported. Flags that would choose the cluster, the identity or the credential
(``--kubeconfig``, ``--server``, ``--token``, ``--as``, ...) and local files (``-f``) are refused
outright: the broker decides where a command goes and with which credential, and manifests come
only in the request's ``manifest`` field. Nothing here runs anything; a shell metacharacter is
just a character, and names that are not valid Kubernetes names are refused.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from broker.problems import BadRequest

VERBS = ("get", "describe", "logs", "top", "exec", "delete", "scale", "rollout", "apply", "patch", "label",
         "annotate", "cordon", "uncordon")
ROLLOUT_ACTIONS = ("restart", "status", "undo")
OUTPUTS = ("json", "yaml", "wide", "name")
PATCH_TYPES = {"strategic": "application/strategic-merge-patch+json", "merge": "application/merge-patch+json",
               "json": "application/json-patch+json"}

# Flags that would let the caller pick the cluster, the identity or a local file.
REFUSED_FLAGS = {
    "--kubeconfig": "the broker chooses the cluster and its credential",
    "--server": "the broker chooses the cluster", "-s": "the broker chooses the cluster",
    "--token": "the broker holds the credential", "--username": "the broker holds the credential",
    "--password": "the broker holds the credential", "--user": "the broker holds the credential",
    "--as": "impersonation is not allowed", "--as-group": "impersonation is not allowed",
    "--as-uid": "impersonation is not allowed", "--context": "the broker chooses the cluster",
    "--cluster": "the broker chooses the cluster", "--certificate-authority": "the broker pins the cluster's CA",
    "--client-certificate": "the broker holds the credential", "--client-key": "the broker holds the credential",
    "--insecure-skip-tls-verify": "TLS verification cannot be turned off",
    "--tls-server-name": "the broker pins the cluster's TLS name",
    "-f": "manifests come only in the request's 'manifest' field, never from a path",
    "--filename": "manifests come only in the request's 'manifest' field, never from a path",
    "-k": "manifests come only in the request's 'manifest' field", "--kustomize": "manifests come only in the "
    "request's 'manifest' field", "--raw": "raw API paths are not allowed", "--cache-dir": "no local files",
    "--log-file": "no local files", "--profile-output": "no local files",
}

_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.:@-]{0,251}[A-Za-z0-9])?$")
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_RESOURCE = re.compile(r"^[a-z][a-z0-9-]{0,62}(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?){0,10}$")
_LABEL_SELECTOR = re.compile(r"^[A-Za-z0-9_./=!,()\s-]{1,1024}$")
_FIELD_SELECTOR = re.compile(r"^[A-Za-z0-9_./=!,-]{1,1024}$")
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)?$")
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(frozen=True)
class Flag:
    names: tuple[str, ...]  # "--namespace", "-n"
    dest: str
    takes_value: bool = True


_NS = Flag(("-n", "--namespace"), "namespace")
_ALL_NS = Flag(("-A", "--all-namespaces"), "all_namespaces", False)
_SELECTOR = Flag(("-l", "--selector"), "selector")
_FIELD = Flag(("--field-selector",), "field_selector")
_OUTPUT = Flag(("-o", "--output"), "output")
_CONTAINER = Flag(("-c", "--container"), "container")
_ALL = Flag(("--all",), "all", False)

FLAGS: dict[str, tuple[Flag, ...]] = {
    "get": (_NS, _ALL_NS, _SELECTOR, _FIELD, _OUTPUT, Flag(("--show-labels",), "show_labels", False),
            Flag(("--ignore-not-found",), "ignore_not_found", False)),
    "describe": (_NS, _ALL_NS, _SELECTOR),
    "logs": (_NS, _SELECTOR, _CONTAINER, Flag(("--tail",), "tail"), Flag(("--since",), "since"),
             Flag(("-p", "--previous"), "previous", False), Flag(("--timestamps",), "timestamps", False),
             Flag(("--all-containers",), "all_containers", False), Flag(("--prefix",), "prefix", False)),
    "top": (_NS, _ALL_NS, _SELECTOR, Flag(("--containers",), "containers", False)),
    "exec": (_NS, _CONTAINER),
    "delete": (_NS, _SELECTOR, _ALL, Flag(("--grace-period",), "grace_period"), Flag(("--cascade",), "cascade"),
               Flag(("--ignore-not-found",), "ignore_not_found", False), Flag(("--wait",), "wait", False)),
    "scale": (_NS, Flag(("--replicas",), "replicas"), Flag(("--current-replicas",), "current_replicas")),
    "rollout": (_NS, Flag(("--to-revision",), "to_revision"), Flag(("--timeout",), "timeout"),
                Flag(("-w", "--watch"), "watch", False)),
    "apply": (_NS, Flag(("--server-side",), "server_side", False), Flag(("--force-conflicts",), "force_conflicts",
                                                                        False)),
    "patch": (_NS, Flag(("-p", "--patch"), "patch"), Flag(("--type",), "patch_type")),
    "label": (_NS, _SELECTOR, _ALL, Flag(("--overwrite",), "overwrite", False)),
    "annotate": (_NS, _SELECTOR, _ALL, Flag(("--overwrite",), "overwrite", False)),
    "cordon": (),
    "uncordon": (),
}

# Flags that are understood but refused because they make a command interactive or unbounded.
_INTERACTIVE = {"-i": "exec is non-interactive: stdin is not forwarded",
                "--stdin": "exec is non-interactive: stdin is not forwarded",
                "-t": "exec has no terminal", "--tty": "exec has no terminal", "-it": "exec is non-interactive",
                "-ti": "exec is non-interactive", "-f": "logs cannot follow; use --tail or --since",
                "--follow": "logs cannot follow; use --tail or --since",
                "-w": "get cannot watch", "--watch": "get cannot watch"}


@dataclass(frozen=True)
class KubectlCommand:
    """One parsed kubectl command. ``resource`` is the type as written (lower-cased), resolved later."""

    verb: str
    action: str = ""  # rollout: restart|status|undo; top: pods|nodes
    resource: str = ""
    names: tuple[str, ...] = ()
    namespace: str | None = None  # None: the default namespace
    all_namespaces: bool = False
    selector: str | None = None
    field_selector: str | None = None
    all: bool = False
    output: str = ""
    show_labels: bool = False
    ignore_not_found: bool = False
    container: str | None = None
    tail: int | None = None
    since_seconds: int | None = None
    previous: bool = False
    timestamps: bool = False
    all_containers: bool = False
    containers: bool = False
    command: tuple[str, ...] = ()  # exec
    replicas: int | None = None
    current_replicas: int | None = None
    to_revision: int | None = None
    timeout_seconds: int | None = None
    watch: bool = False
    grace_period: int | None = None
    cascade: str = "background"
    force_conflicts: bool = False
    patch: Any = None
    patch_type: str = "strategic"
    changes: dict[str, str | None] = field(default_factory=dict)  # label/annotate: key -> value, None = remove
    overwrite: bool = False

    @property
    def verb_phrase(self) -> str:
        """The verb as policies name it: ``get``, ``rollout restart``, ``top``."""
        return f"rollout {self.action}" if self.verb == "rollout" else self.verb


def refuse(detail: str, code: str = "unsupported_command", **extra: Any) -> BadRequest:
    return BadRequest(detail, code=code, extra=extra or None)


def parse_kubectl(argv: tuple[str, ...] | list[str]) -> KubectlCommand:
    """Parse an argument list in kubectl's grammar; raise ``BadRequest`` for anything else."""
    args = list(argv)
    if args and args[0] == "kubectl":
        args = args[1:]
    if not args:
        raise refuse("The kubectl argument list is empty.", supported_verbs=list(VERBS))
    for arg in args:
        _check_characters(arg)
    verb = args[0]
    # Flags that choose the cluster, the identity or a file are refused wherever they appear,
    # except inside the command an exec runs (after "--").
    head = args[: args.index("--")] if "--" in args else args
    for arg in head:
        _check_refused(arg, verb)
    if verb not in VERBS:
        raise refuse(f"kubectl {verb!r} is not supported through the broker (plugins and other verbs are "
                     f"refused). Supported: {', '.join(VERBS)}.", code="unsupported_verb",
                     supported_verbs=list(VERBS))
    positional, values, command = _split(verb, args[1:])
    return _BUILDERS[verb](positional, values, command)


def _check_characters(arg: str) -> None:
    if _CONTROL.search(arg):
        raise refuse("An argument contains a control character; arguments are plain text.",
                     code="invalid_argument")
    if len(arg) > 16_384:
        raise refuse("An argument is longer than 16384 characters.", code="invalid_argument")


def _check_refused(arg: str, verb: str) -> None:
    if not arg.startswith("-"):
        return
    name = arg.split("=", 1)[0]
    if verb == "logs" and name in ("-f", "--follow"):
        raise refuse(f"{name} is not supported: {_INTERACTIVE[name]}.", code="unsupported_flag")
    if name in REFUSED_FLAGS:
        raise refuse(f"{name} is not allowed through the broker: {REFUSED_FLAGS[name]}.", code="refused_argument",
                     argument=name)


def _split(verb: str, rest: list[str]) -> tuple[list[str], dict[str, Any], tuple[str, ...]]:
    """Positional arguments, flag values (by dest) and, for exec, the command after ``--``."""
    flags = FLAGS[verb]
    by_name = {name: f for f in flags for name in f.names}
    positional: list[str] = []
    values: dict[str, Any] = {}
    command: tuple[str, ...] = ()
    i = 0
    while i < len(rest):
        arg = rest[i]
        if arg == "--":
            if verb != "exec":
                positional.extend(rest[i + 1:])
                break
            command = tuple(rest[i + 1:])
            break
        if not arg.startswith("-") or arg == "-" or _is_negative_number(arg):
            positional.append(arg)
            i += 1
            continue
        name, has_inline, inline = arg.partition("=")
        spec = by_name.get(name)
        if spec is None and not name.startswith("--") and len(name) > 2 and name[:2] in by_name \
                and by_name[name[:2]].takes_value:
            spec, has_inline, inline = by_name[name[:2]], "=", arg[2:].removeprefix("=")
        if spec is None:
            _refuse_unknown_flag(verb, name, flags)
        assert spec is not None
        if spec.dest in values:
            raise refuse(f"{name} is given twice.", code="invalid_argument")
        if spec.takes_value:
            if has_inline:
                value = inline
            else:
                if i + 1 >= len(rest):
                    raise refuse(f"{name} needs a value.", code="invalid_argument")
                value = rest[i + 1]
                i += 1
            values[spec.dest] = value
        else:
            if has_inline and inline not in ("true", "false"):
                raise refuse(f"{name} is a switch; it takes no value (or =true/=false).", code="invalid_argument")
            values[spec.dest] = inline != "false"
        i += 1
    return positional, values, command


def _is_negative_number(arg: str) -> bool:
    return arg[1:].isdigit()


def _refuse_unknown_flag(verb: str, name: str, flags: tuple[Flag, ...]) -> None:
    supported = sorted(n for f in flags for n in f.names)
    if name in _INTERACTIVE:
        raise refuse(f"{name} is not supported: {_INTERACTIVE[name]}.", code="unsupported_flag",
                     supported_flags=supported)
    raise refuse(f"kubectl {verb} does not support {name} through the broker. Supported flags: "
                 f"{', '.join(supported) or 'none'}.", code="unsupported_flag", supported_flags=supported)


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
def _get(positional: list[str], values: dict[str, Any], _: tuple[str, ...]) -> KubectlCommand:
    resource, names = _targets(positional, verb="get")
    return KubectlCommand("get", resource=resource, names=names, namespace=_namespace(values),
                          all_namespaces=bool(values.get("all_namespaces")), output=_output(values),
                          show_labels=bool(values.get("show_labels")),
                          ignore_not_found=bool(values.get("ignore_not_found")), **_selectors(values))


def _describe(positional: list[str], values: dict[str, Any], _: tuple[str, ...]) -> KubectlCommand:
    resource, names = _targets(positional, verb="describe")
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


def _metadata(verb: str) -> Any:
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


def _node_switch(verb: str) -> Any:
    def build(positional: list[str], values: dict[str, Any], _: tuple[str, ...]) -> KubectlCommand:
        if not positional:
            raise refuse(f"kubectl {verb} needs a node name.", code="invalid_argument")
        names = tuple(_name(p.split("/", 1)[1] if p.startswith(("node/", "nodes/")) else p) for p in positional)
        return KubectlCommand(verb, resource="nodes", names=names)
    return build


_BUILDERS = {"get": _get, "describe": _describe, "logs": _logs, "top": _top, "exec": _exec, "delete": _delete,
             "scale": _scale, "rollout": _rollout, "apply": _apply, "patch": _patch, "label": _metadata("label"),
             "annotate": _metadata("annotate"), "cordon": _node_switch("cordon"),
             "uncordon": _node_switch("uncordon")}
