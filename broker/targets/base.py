"""The one small interface every target engine implements, and the shapes it returns."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from broker.guard.languages import SQL

if TYPE_CHECKING:  # annotations only: the catalog imports the engine registry, which imports this module
    from broker.catalog import Target
    from broker.guard import Classification
    from broker.lineage.schema import Schema
    from broker.masking.engine import Masker
    from broker.masking.known import KnownValues
    from broker.secrets import SecretValue
    from broker.targets.role_check import RoleSetting


@dataclass(frozen=True)
class Command:
    """What the agent asked to run, exactly; ``digest`` binds approvals to it."""

    language: str  # a ``guard/languages.py`` name: "sql" | "kubectl"
    sql: str = ""
    argv: tuple[str, ...] = ()
    manifest: Any = None

    def canonical(self) -> dict[str, Any]:
        if self.language == SQL.name:  # the digest's shape: never changes (approvals are bound to it)
            return {"language": SQL.name, "sql": self.sql}
        body: dict[str, Any] = {"language": self.language, "argv": list(self.argv)}
        if self.manifest is not None:
            body["manifest"] = self.manifest
        return body

    @property
    def digest(self) -> str:
        data = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return "sha256:" + hashlib.sha256(data.encode()).hexdigest()

    def display(self) -> str:
        return self.sql if self.language == SQL.name else " ".join(self.argv)


@dataclass(frozen=True)
class ExecutionLimits:
    max_rows: int = 1000
    max_bytes: int = 1024 * 1024
    timeout_ms: int = 5000


@dataclass(frozen=True)
class Column:
    name: str
    type: str


@dataclass(frozen=True)
class CutCell:
    """A cell of ``rows`` that is ``null`` because the database withheld its value (``bytes`` long)."""

    row: int
    column: int
    bytes: int


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
    cut_cells: list[CutCell] = field(default_factory=list)
    """Cells withheld at the wire because they (or their row) were over ``max_bytes``."""
    known: KnownValues | None = None
    """Secret values the engine knows are in reach of the command (Kubernetes: the pod's and the
    namespace's Secrets): masked first, wherever and however encoded they appear."""

    @property
    def row_count(self) -> int:
        return len(self.rows)


@dataclass(frozen=True)
class Presentation:
    """How a result's text is made from its *masked* document (YAML, describe, diff), so the text
    never sees a raw value."""

    render: Callable[[Any], str]
    keep_document: bool = False
    """False when the text says everything: the response then carries the text only."""


@runtime_checkable
class PresentedResult(Protocol):
    """A result shown as text rendered from its masked document (``execute/masking.py`` renders it)."""

    def presentation(self) -> Presentation | None:
        """None: the result is shown as it is."""


@runtime_checkable
class CallsJournaled(Protocol):
    """A result that lists the target API calls that ran; the outcome journals them."""

    def api_calls(self) -> list[dict[str, Any]]:
        """Each call (Kubernetes: group/version/resource/verb/namespace/name), in order."""


@dataclass
class DocumentResult(ResultSet):
    """A result from an API rather than a wire protocol (Kubernetes): the calls that ran, and for YAML,
    describe and diffs the presentation of its masked document. Implements ``PresentedResult`` and
    ``CallsJournaled``; SQL engines return plain ``ResultSet``."""

    operations: list[dict[str, Any]] = field(default_factory=list)
    rendering: Presentation | None = None

    def presentation(self) -> Presentation | None:
        return self.rendering

    def api_calls(self) -> list[dict[str, Any]]:
        return self.operations


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


@runtime_checkable
class StructuredMasking(Protocol):
    """An engine whose results have structure the generic scan cannot see (Kubernetes: Secret
    values, secret-named env vars). Applied after the scan; its placeholders are never re-scanned."""

    def mask_structure(self, value: Any, masker: Masker, counts: Counter[str]) -> Any:
        """``value`` (a document or text) with the structural rules applied; ``counts`` by kind."""


@runtime_checkable
class RoleSettingsSource(Protocol):
    """An SQL engine that can say which server limits its role carries (``targets check``)."""

    def role_settings(self, target: Target, secret: SecretValue, connections_needed: int) -> list[RoleSetting]:
        """The role's limits as its sessions see them, each with a verdict (``role_check``)."""


@runtime_checkable
class DryRun(Protocol):
    """An engine that can show what a changing command would do without doing it (Kubernetes: a
    server-side dry run). Approvers read its masked result (``ResultSet.text``, a diff)."""

    def preview(self, target: Target, command: Command, secret: SecretValue,
                limits: ExecutionLimits) -> ResultSet | None:
        """None for commands without a dry run (reads, exec). Nothing is persisted on the target."""


@dataclass(frozen=True)
class TableImpact:
    """Rows one statement changed in one table, and how many the table held before."""

    table: str
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    total: int | None = None
    """Rows in the table before the change: the planner's estimate, or counted when it has none."""
    total_exact: bool = False

    @property
    def changed(self) -> int:
        return self.inserted + self.updated + self.deleted

    def to_dict(self) -> dict[str, Any]:
        return {"table": self.table, "changed": self.changed, "inserted": self.inserted, "updated": self.updated,
                "deleted": self.deleted, "total": self.total, "total_exact": self.total_exact}


@dataclass
class Impact:
    """What a row-changing statement would do, measured in a transaction that was rolled back.

    ``measured`` False: the trial was refused before it ran (``reason``: it would have effects a
    rollback cannot undo, or the statement does not change rows) or the statement failed in it
    (``error``). Either way approvers read "impact not measured" and why."""

    measured: bool
    rows: int | None = None
    """The statement's own count (``rowcount`` / ``ROW_COUNT()``)."""
    tables: list[TableImpact] = field(default_factory=list)
    sample: ResultSet | None = None
    """A few changed rows (new values; deleted rows as they were), raw: mask before showing."""
    sample_source: str = ""
    """A query whose outputs are the sample's columns (for lineage: which are sensitive)."""
    reason: str = ""
    error: str = ""
    error_code: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> int:
        """Every row changed in any table (cascades and triggers included), at least the statement's count."""
        return max(self.rows or 0, sum(t.changed for t in self.tables))


@dataclass(frozen=True)
class ImpactBound:
    """How much the approved run may change: at most what was previewed, and at most the policy's
    ``max_rows_changed``. The run rolls back and raises ``impact_exceeded`` past either."""

    rows: int | None = None
    """The statement's previewed count (None: not previewed)."""
    tables: dict[str, int] | None = None
    """Previewed changes per table; a table missing here may change no row (None: not previewed)."""
    max_rows_changed: int | None = None

    def excess(self, rows: int | None, tables: dict[str, int]) -> str | None:
        """Why a run that changed ``rows`` (statement) and ``tables`` (per table) may not commit, or None."""
        total = max(rows or 0, sum(tables.values()))
        if self.max_rows_changed is not None and total > self.max_rows_changed:
            return f"it changes {total} row(s), more than the policy's max_rows_changed ({self.max_rows_changed})"
        if self.rows is not None and rows is not None and rows > self.rows:
            return f"the statement changes {rows} row(s); approvers were shown {self.rows}"
        for table, changed in sorted(tables.items()):
            if self.tables is not None and changed > self.tables.get(table, 0):
                return (f"it changes {changed} row(s) in {table}; approvers were shown "
                        f"{self.tables.get(table, 0)}")
        return None


@runtime_checkable
class ImpactTrial(Protocol):
    """An SQL engine that can measure a row change before people approve it, and hold the approved
    run to what it measured. The trial runs inside a transaction that is always rolled back, under the
    statement and lock timeouts; the engine refuses the trial (``Impact.measured`` False) where it would
    have effects a rollback does not undo (triggers it cannot inspect, sequences, other connections)."""

    def measure_impact(self, target: Target, command: Command, secret: SecretValue, limits: ExecutionLimits,
                       *, sample_rows: int) -> Impact:
        """Never commits. Raises BrokerError only when the target cannot be reached; a statement that
        fails in the trial comes back as ``Impact(measured=False, error=...)``."""

    def execute_bounded(self, target: Target, command: Command, secret: SecretValue, limits: ExecutionLimits,
                        bound: ImpactBound) -> ResultSet:
        """Run a write in one transaction and commit only within ``bound``; past it roll back and raise
        ``Conflict(code="impact_exceeded")``."""
