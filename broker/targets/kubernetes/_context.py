"""What every operation needs: the cluster client, the target, the policy's limits, and the calls
that ran (journaled as the resolved API operations)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from broker.catalog import Target
from broker.guard.kubectl_command import KubectlCommand
from broker.guard.kubernetes import DEFAULT_NAMESPACE
from broker.targets.base import ExecutionLimits
from broker.targets.kubernetes._connection import Cluster
from broker.targets.kubernetes._errors import api_error
from broker.targets.kubernetes._resolve import Resolved

T = TypeVar("T")
MAX_OPERATIONS_JOURNALED = 50


@dataclass
class Ctx:
    cluster: Cluster
    target: Target
    limits: ExecutionLimits
    operations: list[dict[str, Any]] = field(default_factory=list)

    @property
    def timeout(self) -> float:
        return max(self.limits.timeout_ms / 1000, 1.0)

    def namespace(self, cmd: KubectlCommand, resolved: Resolved) -> str | None:
        """The namespace a request goes to: None for cluster-scoped resources and -A."""
        if not resolved.namespaced or cmd.all_namespaces:
            return None
        return cmd.namespace or DEFAULT_NAMESPACE

    def call(self, operation: dict[str, Any], fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one API call, recording the operation first (so a failed call is journaled too)."""
        if len(self.operations) < MAX_OPERATIONS_JOURNALED:
            self.operations.append(operation)
        try:
            return fn(*args, _request_timeout=self.timeout, **kwargs)
        except Exception as exc:
            raise api_error(exc, self.target.name) from exc

    def request(self, operation: dict[str, Any], fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A dynamic-client call with ``serialize=False``, parsed as JSON."""
        response = self.call(operation, fn, *args, serialize=False, **kwargs)
        data = response.data if hasattr(response, "data") else response
        if isinstance(data, bytes):
            data = data.decode("utf-8", "replace")
        return json.loads(data) if isinstance(data, str) and data else data


def with_kind(item: dict[str, Any], resolved: Resolved) -> dict[str, Any]:
    """List items come without apiVersion/kind; kubectl adds them, and masking relies on them."""
    api_version = f"{resolved.group}/{resolved.version}" if resolved.group else resolved.version
    return {"apiVersion": item.get("apiVersion") or api_version, "kind": item.get("kind") or resolved.kind, **item}
