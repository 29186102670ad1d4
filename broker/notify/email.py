"""Approval requests by email: one message per approver, each with their own link."""

from __future__ import annotations

from broker.notify.base import ApprovalAsk, Mailer
from broker.notify.messages import approval_email


class EmailNotifier:
    channel = "email"

    def __init__(self, mailer: Mailer, *, product: str = "Agent access broker") -> None:
        self._mailer = mailer
        self._product = product

    def ask(self, asks: list[ApprovalAsk]) -> None:
        for ask in asks:
            self._mailer.send(approval_email(ask, product=self._product))


class SilentNotifier:
    """``BROKER_MAIL_TRANSPORT=none``: nobody is mailed (approvers use the Logic App or the API)."""

    channel = "none"

    def ask(self, asks: list[ApprovalAsk]) -> None:
        return None
