"""A Logic App (or any automation holding the shared key) posting a decision it collected.

The body is signed (``X-Broker-Signature``, see ``broker.approvals.signature``) with a key from
Key Vault, names the approver it speaks for and the request it decides (``request_id``, which must
be the one in the route: else a decision captured for one request, in a Logic App's run history or a
proxy log, could be posted to another pending request of the same approver within the window); each
signature counts once (the replay guard stores it with the request).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from broker.approvals import signature
from broker.approvals.channels.base import Inbound, named_approver, record
from broker.approvals.decisions import Accepted, DecisionDesk
from broker.approvals.independence import approver_key
from broker.problems import BadRequest, BrokerError, Forbidden
from broker.secrets import SecretValue


class SingleUse(Protocol):
    def use_token(self, request_id: str, token_id: str, approver: str) -> bool:
        """False when this id was used before for the request."""
        ...


class LogicAppChannel:
    name = "hmac"

    def __init__(self, desk: DecisionDesk, used: SingleUse, key: Callable[[], SecretValue], *,
                 window_seconds: int = 300) -> None:
        self._desk = desk
        self._used = used
        self._key = key
        self._window = window_seconds

    def accepts(self, inbound: Inbound) -> bool:
        return signature.HEADER in inbound.headers

    def receive(self, inbound: Inbound) -> Accepted:
        named, name = named_approver(inbound.body)
        rid = inbound.request_id
        try:
            if not named:
                raise BadRequest("A signed decision names its approver: {\"approver\": {\"tenant_id\", "
                                 "\"object_id\", \"name\"}}.", code="invalid_request")
            mac = signature.verify(self._key().value.encode(), inbound.headers[signature.HEADER], inbound.raw,
                                   window_seconds=self._window)
            signed_for = inbound.body.get("request_id") if isinstance(inbound.body, dict) else None
            if not isinstance(signed_for, str) or not signed_for:
                raise BadRequest("A signed decision names the request it decides: {\"request_id\": \"…\"} in the "
                                 "signed body.", code="invalid_request")
            if signed_for != rid:
                raise Forbidden("This signed decision is for another request.", code="token_wrong_request")
            approver = approver_key(named.get("tenant_id"), named.get("object_id"))
            if not self._used.use_token(rid, f"sig-{mac}", approver):
                raise Forbidden("This signed decision was used already (a replay).", code="signature_replayed")
        except BrokerError as error:
            self._desk.refuse(error, rid, inbound.ctx, self.name, "", name)
        return record(self._desk, inbound, approver, name, self.name)
