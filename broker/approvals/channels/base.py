"""What every inbound approval channel shares: the decision as it arrived, and the contract.

An HTTP (or chat) adapter takes the decision off the wire (route id, size limit, JSON or form
parsing, cookies) into an ``Inbound``; a channel then proves who decides and hands the decision
to the ``DecisionDesk``, which applies the same checks whatever the channel. A channel journals
every refusal it finds (through ``desk.refuse``) before raising it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from broker.approvals.decisions import Accepted, DecisionDesk
from broker.approvals.independence import Actor
from broker.execute import CallContext
from broker.problems import BadRequest


@dataclass(frozen=True)
class Inbound:
    """One decision as it arrived, with the transport gone: header names are lower-case."""

    request_id: str
    ctx: CallContext
    body: Mapping[str, Any] = field(default_factory=dict)
    """The parsed JSON object (or form fields) of the request."""
    raw: bytes = b""
    """The body exactly as received (what a signature covers)."""
    headers: Mapping[str, str] = field(default_factory=dict)
    cookie_nonce: str = ""
    """The approval page's CSRF nonce from its SameSite=Strict cookie."""
    page_origin: str = ""
    """``scheme://host`` the page was served from; a form posted from elsewhere is refused."""


class DecisionChannel(Protocol):
    """One way a decision reaches the broker (a link, an Entra token, a signed callback, ...)."""

    name: str
    """The ``via`` the journal records for it (a channel may record a more precise one)."""

    def accepts(self, inbound: Inbound) -> bool:
        """Whether this inbound decision is this channel's to verify (e.g. it carries its signature)."""
        ...

    def receive(self, inbound: Inbound) -> Accepted:
        """Verify who decides, then record the decision with the desk; refusals are journaled and raised."""
        ...


def named_approver(body: Mapping[str, Any]) -> tuple[Mapping[str, Any], str]:
    """The ``approver`` object a body names (or ``{}``) and its display name, cut to 100 characters."""
    named = body.get("approver") if isinstance(body.get("approver"), dict) else {}
    return named, str(named.get("name", ""))[:100]


def record(desk: DecisionDesk, inbound: Inbound, approver: str, name: str, via: str,
           actor: Actor | None = None) -> Accepted:
    """The common end of the JSON channels: the comment's type, then the desk's checks and record."""
    comment = inbound.body.get("comment", "")
    if not isinstance(comment, str):
        desk.refuse(BadRequest("The comment must be a string.", code="invalid_request"), inbound.request_id,
                    inbound.ctx, via, approver, name, actor)
    return desk.decide_by_automation(inbound.request_id, approver, name, str(inbound.body.get("verdict", "")), via,
                                     inbound.ctx, actor, comment)
