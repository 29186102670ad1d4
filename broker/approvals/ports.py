"""What the approval domain needs from storage, declared so the domain does not depend on Table
Storage: ``RequestStore`` (``requests.py``) is the adapter; tests run the domain on an in-memory
implementation (``tests/memory.py``) that one contract test holds to the same behaviour.

``AfterApproval`` is how a request kind whose life goes on after its approval (a grant) shows where
it stands, without the approval package knowing that life's states."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from broker.approvals.requests import ApprovalRequest, DecisionRow, IndexEntry
from broker.journal.records import JournalRecord


class RequestRecords(Protocol):
    """Approval requests, the decisions on them, used links and claims. Every change is atomic per
    request (an ETag-guarded status move, a conditional insert): two approvers, a replayed link or a
    re-delivered activity never count twice."""

    def create(self, request: ApprovalRequest) -> None:
        """Store a new request; 409 ``duplicate_request`` when its id exists, ``command_too_large``."""

    def get(self, request_id: str) -> ApprovalRequest:
        """The request; 404 ``not_found``."""

    def find(self, request_id: str) -> ApprovalRequest | None: ...

    def transition(self, request_id: str, allowed_from: Iterable[str], to: str, **changes: Any) -> ApprovalRequest:
        """Move it to ``to`` from one of ``allowed_from``; 409 ``already_decided`` / 410 ``expired`` else."""

    def add_decision(self, request_id: str, row: DecisionRow) -> bool:
        """False when this approver decided already."""

    def use_token(self, request_id: str, token_id: str, approver: str) -> bool:
        """False when the link (or signature) was used already."""

    def token_used(self, request_id: str, token_id: str) -> bool: ...

    def release(self, request_id: str, token_id: str | None, approver: str) -> None:
        """Undo a decision that could not be delivered."""

    def decisions(self, request_id: str) -> list[DecisionRow]:
        """In the order they were made."""

    def claim(self, index: str, request: ApprovalRequest) -> IndexEntry | None:
        """None once ``index`` points at ``request``; else the entry that holds it."""

    def take_over(self, index: str, held: IndexEntry, request: ApprovalRequest) -> bool: ...

    def release_claim(self, index: str, request_id: str) -> None: ...

    def mine(self, requester_key: str, limit: int) -> list[ApprovalRequest]:
        """Newest first."""

    def store_result(self, request_id: str, result: dict[str, Any]) -> str: ...

    def load_result(self, request_id: str) -> dict[str, Any] | None: ...

    def close(self) -> None: ...


class JournalSink(Protocol):
    """Where records go (``JournalWriter``): returns the record's id once it is durable."""

    def write(self, record: JournalRecord) -> str: ...


@dataclass(frozen=True)
class Standing:
    """Where an approved request stands now, as the package that carries it on keeps it (a grant's
    lifecycle lives with the grant, not in the request row). Its fields replace the request's own in
    the status a caller reads."""

    status: str
    next_step: str
    grant: dict[str, Any] = field(default_factory=dict)
    ended_at: str = ""
    ended_by: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] = field(default_factory=dict)


class AfterApproval(Protocol):
    """What became of approved requests of one kind (``broker/grants/view.py`` for grants)."""

    def standing(self, requests: Sequence[ApprovalRequest]) -> dict[str, Standing]:
        """By request id; a request that is missing keeps its own status."""
