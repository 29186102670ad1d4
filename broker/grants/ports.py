"""What the grant domain needs from storage and from the approvals, declared here so that grants
depend on the approval package only through this surface (and approvals never on grants).

``GrantRecords`` is the one table a grant's lifecycle lives in (``store.py`` is the adapter,
``tests/memory.py`` the in-memory one); ``ApprovalRequests`` is the approval request a grant waits
on, which ends at approved, denied, expired, cancelled or failed and never moves again for the grant.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from broker.approvals.requests import ApprovalRequest
from broker.execute import Held
from broker.grants.store import GrantRecord
from broker.journal.events import Subject
from broker.policy import Grant
from broker.problems import BrokerError


class GrantRecords(Protocol):
    """Just-in-time grants per grantee; every status move is ETag-guarded on the one row."""

    def create(self, record: GrantRecord) -> None:
        """409 ``duplicate_request`` when it exists."""

    def get(self, principal_key: str, grant_id: str) -> GrantRecord:
        """404 ``not_found``."""

    def transition(self, principal_key: str, grant_id: str, allowed_from: set[str], to: str,
                   **changes: Any) -> GrantRecord | None:
        """None when it is no longer in ``allowed_from`` (someone moved it first)."""

    def active(self, principal_key: str, target: str, now: datetime | None = None) -> list[Grant]:
        """Active and not past their expiry: what the execute path honours."""

    def list_for(self, principal_key: str) -> list[GrantRecord]:
        """Newest first."""

    def close(self) -> None: ...


class ApprovalRequests(Protocol):
    """The approval side of a grant (``ApprovalService``): hold it for people, read how it ended."""

    def get(self, request_id: str) -> ApprovalRequest:
        """The request as stored; 404 ``not_found``."""

    def open(self, request: ApprovalRequest, subject: Subject) -> ApprovalRequest:
        """Store and journal a new request; 403 ``no_approvers`` when no quorum is possible."""

    def held(self, request: ApprovalRequest, *, resubmitted: bool = False) -> Held: ...

    def abandon(self, request_id: str, error: BrokerError) -> None:
        """The request ends as failed (its workflow could not start, or its grant row)."""
