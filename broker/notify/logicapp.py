"""Asking approvers through a Logic App: one POST to its HTTP trigger per request, listing the
approvers. The Logic App asks them (Outlook / Teams approval actions) and posts each answer to
``POST /api/approvals/{id}/decision`` with its managed identity or an HMAC signature."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from broker.approvals import shown
from broker.notify.base import ApprovalAsk
from broker.notify.messages import summary, whole_command
from broker.problems import Unavailable


class LogicAppNotifier:
    channel = "logic-app"

    def __init__(self, trigger_url: Callable[[], str], *, timeout: float = 10.0) -> None:
        self._url = trigger_url  # a SAS-signed URL: a secret, read from Key Vault
        self._timeout = timeout

    def payload(self, asks: list[ApprovalAsk]) -> dict[str, object]:
        """What the Logic App shows its approvers: the whole command (escaped, never cut: its approvers
        have no page to read the rest on), the hidden-character warnings and the measured impact."""
        first = summary(asks[0])
        first.pop("link")
        first.pop("approver")
        r = asks[0].request
        first["command"] = whole_command(shown.parts(r.command, r.preview) if r.kind == "command" else [])
        first["command_truncated"], first["more_chars"] = False, 0
        return {**first, "decision_url": asks[0].decision_url,
                "approvers": [{"tenant_id": a.approver.tenant_id, "object_id": a.approver.object_id,
                               "name": a.approver.name, "email": a.approver.email} for a in asks]}

    def ask(self, asks: list[ApprovalAsk]) -> None:
        if not asks:
            return
        try:
            response = httpx.post(self._url(), json=self.payload(asks), timeout=self._timeout)
        except httpx.HTTPError as exc:
            raise Unavailable("The approval Logic App is unreachable.", code="notify_unavailable") from exc
        if response.status_code >= 300:
            raise Unavailable(f"The approval Logic App answered {response.status_code}.", code="notify_unavailable")
