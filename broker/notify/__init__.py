"""Asking approvers: email (Azure Communication Services in Azure, SMTP locally) or a Logic App.

A ``Notifier`` receives one ``ApprovalAsk`` per approver (each with that approver's own link)
and must not decide anything. Mail bodies are built in ``messages`` (text + HTML, escaped);
transports live one per module (``smtp``, ``acs``, ``logicapp``).
"""

from broker.notify.base import ApprovalAsk, Email, Mailer, Notifier
from broker.notify.factory import notifier_from_settings

__all__ = ["ApprovalAsk", "Email", "Mailer", "Notifier", "notifier_from_settings"]
