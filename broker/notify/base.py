"""The shapes every notifier shares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from broker.approvals.directory import Approver
    from broker.approvals.requests import ApprovalRequest


@dataclass(frozen=True)
class ApprovalAsk:
    """One approver, asked about one request, with their personal link."""

    approver: Approver
    request: ApprovalRequest
    link: str  # GET shows the page; only its form's POST decides
    decision_url: str  # for automations: POST /api/approvals/{id}/decision


@dataclass(frozen=True)
class Email:
    to: str
    to_name: str
    subject: str
    text: str
    html: str


class Mailer(Protocol):
    def send(self, email: Email) -> None: ...


class Notifier(Protocol):
    channel: str

    def ask(self, asks: list[ApprovalAsk]) -> None:
        """Deliver every ask or raise ``Unavailable`` (the activity retries)."""
