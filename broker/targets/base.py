"""The one small interface every target engine implements, and the shapes it returns."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from broker.catalog import Target
from broker.guard import Classification
from broker.lineage.schema import Schema
from broker.masking.known import KnownValues
from broker.secrets import SecretValue


@dataclass(frozen=True)
class Command:
    """What the agent asked to run, exactly; ``digest`` binds approvals to it."""

    language: str  # "sql" | "kubectl"
    sql: str = ""
    argv: tuple[str, ...] = ()
    manifest: Any = None

    def canonical(self) -> dict[str, Any]:
        if self.language == "sql":
            return {"language": "sql", "sql": self.sql}
        body: dict[str, Any] = {"language": self.language, "argv": list(self.argv)}
        if self.manifest is not None:
            body["manifest"] = self.manifest
        return body

    @property
    def digest(self) -> str:
        data = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return "sha256:" + hashlib.sha256(data.encode()).hexdigest()

    def display(self) -> str:
        return self.sql if self.language == "sql" else " ".join(self.argv)


@dataclass(frozen=True)
class ExecutionLimits:
    max_rows: int = 1000
    max_bytes: int = 1024 * 1024
    timeout_ms: int = 5000


@dataclass(frozen=True)
class Column:
    name: str
    type: str


@dataclass
class ResultSet:
    """A command's result before masking. Tabular (``columns``/``rows``), or a document, or text."""

    columns: list[Column] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    truncated: bool = False
    truncated_by: Literal["max_rows", "max_bytes", "timeout"] | None = None
    """Which limit stopped the answer early (set with ``truncated``)."""
    status: str = ""  # the target's own summary, e.g. "SELECT 5" or "DELETE 1"
    affected: int | None = None
    document: Any = None
    text: str | None = None
    bytes: int = 0
    operations: list[dict[str, Any]] = field(default_factory=list)
    """The target API calls that ran (Kubernetes: group/version/resource/verb/namespace/name); journaled."""
    render: Callable[[Any], str] | None = None
    """Makes ``text`` from the *masked* document (YAML, describe, diff), so text never sees raw values."""
    keep_document: bool = True
    """False when ``render`` says everything: the response then carries the text only."""
    known: KnownValues | None = None
    """Secret values the engine knows are in reach of the command (Kubernetes: the pod's and the
    namespace's Secrets): masked first, wherever and however encoded they appear."""

    @property
    def row_count(self) -> int:
        return len(self.rows)


class TargetEngine(Protocol):
    """One engine per protocol. Engines are long-lived and thread-safe (they pool connections)."""

    language: str  # the command language this engine accepts
    dialect: str  # the guard's dialect name

    def classify(self, command: Command) -> Classification: ...

    def resolve(self, target: Target, command: Command, classification: Classification,
                secret: Callable[[], SecretValue]) -> Classification:
        """``classification`` refined by what the target itself resolves (its catalog: functions,
        views, policies); engines without such a catalog return it unchanged. ``secret`` is only
        called when a lookup is needed."""

    def execute(self, target: Target, command: Command, secret: SecretValue, limits: ExecutionLimits,
                *, read_only: bool) -> ResultSet: ...

    def check(self, target: Target, secret: SecretValue) -> None:
        """Raise if the target cannot be reached with this credential (health)."""

    def unavailable_reason(self) -> str | None:
        """Why this engine cannot run where the broker runs (a missing native driver), else None.

        Cheap and local: ``/api/health`` and ``/api/targets`` ask it on every call."""

    def close(self) -> None: ...


@runtime_checkable
class SchemaSource(Protocol):
    """An SQL engine that can list its target's columns: statements on it get column lineage."""

    def read_schema(self, target: Target, secret: SecretValue) -> Schema:
        """Every table and column the broker's credential can see (``broker/lineage/schema.py``)."""
