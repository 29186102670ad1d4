"""Azure Communication Services Email (``azure-communication-email``), reached with the broker's
managed identity (``BROKER_ACS_ENDPOINT``) or a connection string."""

from __future__ import annotations

from typing import Any

from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError

from broker.notify.base import Email
from broker.problems import Unavailable


class AcsMailer:
    def __init__(self, sender: str, *, endpoint: str = "", credential: TokenCredential | None = None,
                 connection_string: str = "") -> None:
        from azure.communication.email import EmailClient

        if connection_string:
            self._client = EmailClient.from_connection_string(connection_string)
        elif endpoint and credential is not None:
            self._client = EmailClient(endpoint, credential)
        else:
            raise ValueError("ACS email needs BROKER_ACS_ENDPOINT (managed identity) or BROKER_ACS_CONNECTION_STRING")
        self._sender = sender

    def message(self, email: Email) -> dict[str, Any]:
        """The ACS send-mail body (camelCase, as the service defines it)."""
        return {
            "senderAddress": self._sender,
            "recipients": {"to": [{"address": email.to, "displayName": email.to_name}]},
            "content": {"subject": email.subject, "plainText": email.text, "html": email.html},
            "headers": {"Auto-Submitted": "auto-generated"},
            "userEngagementTrackingDisabled": True,  # no tracking redirects around the approval link
        }

    def send(self, email: Email) -> None:
        try:
            # ACS accepts the message with 202; delivery is tracked by the service. Waiting for the
            # poller would only slow the approval down, so its first answer is enough.
            poller = self._client.begin_send(self.message(email))
            if poller.status().lower() == "failed":
                raise Unavailable("Azure Communication Services refused the approval email.",
                                  code="mail_unavailable")
        except AzureError as exc:
            raise Unavailable("Azure Communication Services Email is unreachable.", code="mail_unavailable") from exc
