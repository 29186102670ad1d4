"""The kubectl grammar the broker accepts: an argument list (never a shell line) parsed into a
``KubectlCommand``, or refused with a precise ``BadRequest``.

Only the verbs and flags agents need are understood; anything else is refused with the list of
what is supported. Flags that would choose the cluster, the identity or the credential
(``--kubeconfig``, ``--server``, ``--token``, ``--as``, ...) and local files (``-f``) are refused
outright: the broker decides where a command goes and with which credential, and manifests come
only in the request's ``manifest`` field. Nothing here runs anything; a shell metacharacter is
just a character, and names that are not valid Kubernetes names are refused. The verbs' own
arguments are built and checked in ``_kubectl_verbs``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from broker.guard._kubectl_verbs import BUILDERS
from broker.guard.kubectl_command import VERBS, KubectlCommand, refuse

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
    return BUILDERS[verb](positional, values, command)


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
