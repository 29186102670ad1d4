"""What a parsed kubectl command is: the vocabulary of verbs, outputs and patch types, the
``KubectlCommand`` record the guard and the Kubernetes engine share, and the refusal every parser
step raises. The grammar that builds it lives in ``kubectl`` (flags) and ``_kubectl_verbs`` (each
verb's arguments); keeping the record apart keeps those two free of an import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from broker.problems import BadRequest

VERBS = ("get", "describe", "logs", "top", "exec", "delete", "scale", "rollout", "apply", "patch", "label",
         "annotate", "cordon", "uncordon")
ROLLOUT_ACTIONS = ("restart", "status", "undo")
OUTPUTS = ("json", "yaml", "wide", "name")
PATCH_TYPES = {"strategic": "application/strategic-merge-patch+json", "merge": "application/merge-patch+json",
               "json": "application/json-patch+json"}

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
