"""What the approval domain needs from storage, declared so the domain does not depend on Table
Storage: ``RequestStore`` (``requests.py``) is the adapter; tests run the domain on an in-memory
implementation (``tests/memory.py``) that one contract test holds to the same behaviour."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from broker.approvals.requests import ApprovalRequest, DecisionRow, IndexEntry
from broker.journal.records import JournalRecord
from broker.policy import Grant

if TYPE_CHECKING:  # grants import approvals; the record type is only named here
    from broker.grants.store import GrantRecord


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


class GrantRecords(Protocol):
    """Just-in-time grants per grantee (``broker/grants/store.py`` is the adapter)."""

    def create(self, record: GrantRecord) -> None:
        """409 ``duplicate_request`` when it exists."""

    def get(self, principal_key: str, grant_id: str) -> GrantRecord: ...

    def transition(self, principal_key: str, grant_id: str, allowed_from: set[str], to: str,
                   **changes: Any) -> GrantRecord | None:
        """None when it is no longer in ``allowed_from`` (someone ended it first)."""

    def active(self, principal_key: str, target: str, now: datetime | None = None) -> list[Grant]:
        """Active and not past their expiry: what the execute path honours."""

    def list_for(self, principal_key: str) -> list[GrantRecord]:
        """Newest first."""

    def close(self) -> None: ...
