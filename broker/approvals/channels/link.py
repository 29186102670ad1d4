"""The signed link an approver receives (by mail, or inside a Logic App's Teams card).

``GET`` shows the page and decides nothing (mail scanners and link previews open every link);
the page's form decides, with the link token, the page's CSRF nonce (a form field and a
SameSite=Strict cookie) and a same-origin check, all verified by the desk and here.
"""

from __future__ import annotations

from broker.approvals.channels.base import Inbound
from broker.approvals.decisions import Accepted, DecisionDesk, PageView
from broker.execute import CallContext
from broker.problems import Forbidden


class SignedLinkChannel:
    name = "link"

    def __init__(self, desk: DecisionDesk) -> None:
        self._desk = desk

    def show(self, request_id: str, token: str, ctx: CallContext) -> PageView:
        """What the page shows this link's approver; never a decision."""
        return self._desk.view(request_id, token, ctx)

    def accepts(self, inbound: Inbound) -> bool:
        return "t" in inbound.body

    def receive(self, inbound: Inbound) -> Accepted:
        origin = inbound.headers.get("origin", "").lower()
        if origin and origin != "null" and origin != inbound.page_origin.lower():
            self._desk.refuse(Forbidden("The decision was posted from another site.", code="csrf_failed"),
                              inbound.request_id, inbound.ctx, "link")
        form = {str(k): str(v) for k, v in inbound.body.items()}
        return self._desk.decide_by_link(inbound.request_id, form, inbound.cookie_nonce, inbound.ctx)
