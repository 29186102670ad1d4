"""What the execute path answers: a result that ran (``Done``), a command held for people
(``Pending``), and what approvers are shown before they decide (``CommandPreview``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from broker.catalog import Target
from broker.execute.request import ExecuteBody
from broker.guard import Classification
from broker.identity import Principal
from broker.journal.events import Subject
from broker.policy import Decision
from broker.targets import Command, ResultSet


@dataclass
class ExecuteResult:
    """What the agent receives for a command that ran (already masked)."""

    request_id: str
    record_id: str
    target: str
    result: ResultSet
    masked: dict[str, int]
    duration_ms: float
    classification: Classification
    decision: Decision
    status: Literal["done"] = "done"
    extra: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    """Milliseconds per phase (``Server-Timing``): thread (the wait for a worker thread), auth,
    decide, admission (the wait for a slot of the target), journal-intent, run, mask, journal-outcome."""

    def server_timing(self) -> str:
        return ", ".join(f"{name};dur={ms:.2f}" for name, ms in self.timings.items())

    def to_dict(self) -> dict[str, Any]:
        r = self.result
        body: dict[str, Any] = {
            "status": self.status,
            "request_id": self.request_id,
            "record_id": self.record_id,
            "target": self.target,
            "columns": [{"name": c.name, "type": c.type} for c in r.columns],
            "result_kind": result_kind(r),
            "rows": r.rows,
            "row_count": r.row_count,
            "truncated": r.truncated,
            "masked": self.masked,
            "command_status": r.status,
            "duration_ms": round(self.duration_ms, 2),
            "risk": self.classification.risk.value,
            "decision": {"effect": self.decision.effect, "rule_id": self.decision.rule_id,
                         "policy_version": self.decision.policy_version},
        }
        if self.decision.grant_id:
            body["decision"]["grant_id"] = self.decision.grant_id
        if r.truncated:
            body["truncation"] = truncation(r, self.decision)
        if r.affected is not None:
            body["affected_rows"] = r.affected
        if r.document is not None:
            body["document"] = r.document
        if r.text is not None:
            body["text"] = r.text
        return body


def result_kind(result: ResultSet) -> Literal["rows", "document", "text"]:
    """Which field carries the answer: ``rows`` (with ``columns``), ``document`` (e.g. ``kubectl get
    -o json``: the rows are empty, that is not "nothing found") or ``text``."""
    if result.document is not None:
        return "document"
    if result.text is not None and not result.columns:
        return "text"
    return "rows"


def truncation(result: ResultSet, decision: Decision) -> dict[str, Any]:
    """Why the answer stopped early and at which limit, so the caller knows what to narrow."""
    reason = result.truncated_by or ("max_rows" if result.row_count >= decision.limits.max_rows else "max_bytes")
    limits = {"max_rows": decision.limits.max_rows, "max_bytes": decision.limits.max_bytes,
              "timeout": decision.limits.statement_timeout_ms}
    hints = {"max_rows": "Narrow the query (WHERE, LIMIT, fewer items) or page through the result.",
             "max_bytes": "Select fewer or smaller columns, or a part of a large value (left(), substring()): "
                          "a cell larger than the limit is withheld (listed in `cells`) and a row that "
                          "would cross it is not sent.",
             "timeout": "The command ran out of time; narrow it."}
    body = {"reason": reason, "limit": limits.get(reason), "returned_rows": result.row_count,
            "returned_bytes": result.bytes, "remedy": hints.get(reason, "")}
    if result.cut_cells:  # each is null in ``rows``: a hole, not a NULL
        body["cells"] = [{"row": c.row, "column": c.column, "bytes": c.bytes} for c in result.cut_cells]
    return body


@dataclass(frozen=True)
class ApprovalNeeded:
    """The policy wants a human: what the approval workflow needs to hold the command for them."""

    request_id: str
    principal: Principal
    target: Target
    command: Command
    classification: Classification
    decision: Decision
    body: ExecuteBody
    subject: Subject
    """The call as journaled so far (decided): the held request's records continue from it."""


@dataclass(frozen=True)
class Held:
    """A request waiting for people, as the approval port reports it back."""

    request_id: str
    kind: Literal["command", "grant"]
    status: str
    target: str
    risk: str | None
    expires_at: str
    quorum: int
    groups: tuple[str, ...]
    status_url: str
    resubmitted: bool = False
    """The same command (or idempotency key) was already held: this is that request, nothing new started."""

    def to_dict(self) -> dict[str, Any]:
        """The pending answer (REST 202 body, MCP result)."""
        body: dict[str, Any] = {
            "status": self.status, "kind": self.kind, "request_id": self.request_id, "status_url": self.status_url,
            "expires_at": self.expires_at, "target": self.target, "risk": self.risk,
            "approval": {"quorum": self.quorum, "groups": list(self.groups)}}
        if self.resubmitted:
            body["resubmitted"] = True
        return body


@dataclass(frozen=True)
class Done:
    """The command ran; its masked result."""

    result: ExecuteResult


@dataclass(frozen=True)
class Pending:
    """The command (or grant) waits for people; poll ``held.status_url``."""

    held: Held


Submitted = Done | Pending
"""What an entry point gets back from ``ExecuteService.submit`` (and ``GrantService.request``)."""


@dataclass(frozen=True)
class CommandPreview:
    """What approvers read before they decide: a masked dry-run diff (Kubernetes) or the measured
    impact of an SQL change (``broker/impact.py``)."""

    diff: str | None
    masked: dict[str, int]
    record_id: str
    impact: dict[str, Any] | None = None
    measured_decision: Decision | None = None
    """The policy asked again with the measured rows (``rows_changed_over``), when that changed the
    answer: a deny fails the request before anyone is asked; an approve by another rule asks its
    approvers instead."""


