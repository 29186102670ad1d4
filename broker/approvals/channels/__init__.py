"""Inbound approval channels: how a decision reaches the broker, one small module per channel.

    link.py       the signed link from the mail (the page's form: link token + CSRF nonce + origin)
    logic_app.py  a Logic App's callback, HMAC-signed with a Key Vault key, single use
    entra.py      an approver's own Entra token, or a delegate app naming the approver it acts for

Each implements ``DecisionChannel`` (``base.py``): it proves who decides and hands the decision to
the ``DecisionDesk``, whose checks are the same for every channel. The HTTP adapter
(``broker.api.approvals``) only translates the wire into an ``Inbound`` and the answer back.

A new channel (a Slack or Teams app posting interactive answers, say) is one module here with
its own proof (Slack's request signature, a Bot Framework token), one entry in
``ApprovalChannels.decision`` below (order matters: the first channel that ``accepts`` a
decision verifies it; ``EntraChannel`` accepts everything and goes last), and, only when its
wire format differs, a route in ``broker.api.approvals`` that builds the ``Inbound``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from broker.approvals.channels.base import DecisionChannel, Inbound
from broker.approvals.channels.entra import Authenticator, EntraChannel
from broker.approvals.channels.link import SignedLinkChannel
from broker.approvals.channels.logic_app import LogicAppChannel
from broker.approvals.decisions import Accepted, DecisionDesk
from broker.approvals.ports import RequestRecords
from broker.execute import CallContext
from broker.problems import Unavailable
from broker.secrets import SecretValue


class ApprovalChannels:
    """Every inbound channel, and what the adapters do around them (count, withdraw)."""

    def __init__(self, desk: DecisionDesk, store: RequestRecords, link: SignedLinkChannel,
                 decision: Sequence[DecisionChannel]) -> None:
        self.desk = desk
        self._store = store
        self.link = link
        self.decision = tuple(decision)

    def for_decision(self, inbound: Inbound) -> DecisionChannel:
        """The first channel whose proof this decision carries."""
        return next(channel for channel in self.decision if channel.accepts(inbound))

    def approvals(self, request_id: str) -> int:
        """How many approvals the request has now (what the answer to the approver reports)."""
        return sum(d.verdict == "approve" for d in self._store.decisions(request_id))

    def withdraw(self, accepted: Accepted, ctx: CallContext) -> Unavailable:
        """The decision could not be delivered to the waiting orchestration: undo it, so the approver
        can try again, journal that it was not counted, and return the error to raise."""
        self._store.release(accepted.request.request_id, accepted.token_id, accepted.approver)
        error = Unavailable("Your decision could not be delivered to the waiting request; it was not counted. "
                            "Try again.", code="workflow_unavailable")
        self.desk.journal_refusal(error, accepted.request.request_id, ctx, accepted.via, accepted.approver,
                                  accepted.name)
        return error


def build_channels(desk: DecisionDesk, store: RequestRecords, *, authenticator: Authenticator,
                   hmac_key: Callable[[], SecretValue], hmac_window_seconds: int) -> ApprovalChannels:
    return ApprovalChannels(desk, store, SignedLinkChannel(desk), [
        LogicAppChannel(desk, store, hmac_key, window_seconds=hmac_window_seconds),
        EntraChannel(desk, authenticator),
    ])


__all__ = ["ApprovalChannels", "DecisionChannel", "EntraChannel", "Inbound", "LogicAppChannel", "SignedLinkChannel",
           "build_channels"]
