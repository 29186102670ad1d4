"""An Entra token: an approver deciding as themself (``entra``), or an application holding the
delegate role deciding for the approver it names (``entra-app``, e.g. a Logic App's managed
identity relaying a Teams answer). An agent identity (``Broker.Caller``) never decides."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from broker.approvals.channels.base import Inbound, named_approver, record
from broker.approvals.decisions import Accepted, DecisionDesk
from broker.approvals.independence import CALLER_ROLE, Actor, approver_key
from broker.identity import Principal
from broker.problems import BrokerError, Forbidden


class Authenticator(Protocol):
    def principal_from_header(self, authorization: str | None) -> Principal: ...


class EntraChannel:
    name = "entra"

    def __init__(self, desk: DecisionDesk, authenticator: Authenticator) -> None:
        self._desk = desk
        self._auth = authenticator

    def accepts(self, inbound: Inbound) -> bool:
        return True  # the default: without another channel's proof, an Entra token is required

    def receive(self, inbound: Inbound) -> Accepted:
        named, name = named_approver(inbound.body)
        rid, ctx = inbound.request_id, inbound.ctx
        try:
            principal = self._auth.principal_from_header(inbound.headers.get("authorization"))
        except BrokerError as error:
            self._desk.refuse(error, rid, ctx, self.name)
        actor = Actor(principal.tenant_id, principal.object_id, principal.app_id, principal.kind,
                      principal.display_name, principal.roles)
        try:
            approver, via = entra_approver(principal, named)
        except BrokerError as error:
            self._desk.refuse(error, rid, ctx, self.name, principal.key, principal.display_name, actor)
        return record(self._desk, inbound, approver, name if via == "entra-app" else principal.display_name, via,
                      actor)


def entra_approver(principal: Principal, named: Mapping[str, Any]) -> tuple[str, str]:
    """A person decides as themself (``entra``); naming someone else is deciding on their behalf
    (``entra-app``), which the desk allows only to an application holding the delegate role."""
    if CALLER_ROLE in principal.roles:
        raise Forbidden(f"An identity holding {CALLER_ROLE} (an agent) never decides approvals, not even for "
                        "someone it names.", code="caller_cannot_approve")
    own = approver_key(principal.tenant_id, principal.object_id)
    if named:
        key = approver_key(named.get("tenant_id"), named.get("object_id"))
        if key != own:
            return key, "entra-app"
    if principal.kind != "user":
        raise Forbidden("An application is not an approver; with the delegate role it names the person it "
                        "decides for.", code="not_an_approver")
    return own, "entra"
