"""The inbound channels on real storage: which channel verifies a decision, and the Logic App
channel's proof (signature, named approver, single use) tried as an attacker would."""

from __future__ import annotations

import json
import time

import pytest

from broker.approvals import signature
from broker.approvals.channels import EntraChannel, Inbound, LogicAppChannel, build_channels
from broker.identity import Principal
from broker.problems import BrokerError, Unauthenticated
from tests.approvals.conftest import ADA, CTX, StaticKey, held_request


class NobodySignedIn:
    """An authenticator that accepts no token (the Entra path is tested end to end)."""

    def principal_from_header(self, authorization: str | None) -> Principal:
        raise Unauthenticated("No valid bearer token.", code="unauthenticated")


def _channels(parts, key: StaticKey):
    return build_channels(parts.desk, parts.store, authenticator=NobodySignedIn(), hmac_key=key,
                          hmac_window_seconds=300)


def _body(rid: str, verdict: str = "approve", **approver: str) -> bytes:
    named = {"tenant_id": ADA.tenant_id, "object_id": ADA.object_id, "name": ADA.name, **approver}
    return json.dumps({"request_id": rid, "verdict": verdict, "approver": named}).encode()


def _inbound(rid: str, raw: bytes, headers: dict[str, str]) -> Inbound:
    return Inbound(rid, CTX, json.loads(raw), raw, headers)


@pytest.mark.parametrize(("headers", "expected"), [
    ({signature.HEADER: "t=1,v1=x"}, LogicAppChannel),
    ({signature.HEADER: "t=1,v1=x", "authorization": "Bearer x"}, LogicAppChannel),  # a signature wins, as before
    ({"authorization": "Bearer x"}, EntraChannel),
    ({}, EntraChannel),  # no proof at all: the Entra channel asks for a token
])
def test_the_first_channel_whose_proof_a_decision_carries_verifies_it(parts, headers, expected):
    channels = _channels(parts, StaticKey())
    assert type(channels.for_decision(Inbound("r", CTX, {}, b"", headers))) is expected


def test_a_signed_decision_counts_once_and_every_refusal_is_journaled(parts):
    key = StaticKey()
    channels = _channels(parts, key)
    request = held_request(parts)
    rid = request.request_id
    raw = _body(rid)

    def receive(body: bytes, header: str):
        inbound = _inbound(rid, body, {signature.HEADER: header})
        return channels.for_decision(inbound).receive(inbound)

    for body, header, code in [
        (raw, signature.sign(b"wrong" * 8, raw), "invalid_signature"),
        (raw.replace(b'"approve"', b'"deny"'), signature.sign(key().value.encode(), raw), "invalid_signature"),
        (raw, signature.sign(key().value.encode(), raw, timestamp=1_700_000_000), "signature_expired"),
        (json.dumps({"verdict": "approve"}).encode(), signature.sign(key().value.encode(), b"{}"), "invalid_request"),
    ]:
        with pytest.raises(BrokerError) as refused:
            receive(body, header)
        assert refused.value.code == code
    signed = signature.sign(key().value.encode(), raw)
    accepted = receive(raw, signed)
    assert (accepted.via, accepted.approver, accepted.verdict) == ("hmac", ADA.key, "approve")
    with pytest.raises(BrokerError) as replayed:
        receive(raw, signed)
    assert replayed.value.code == "signature_replayed"
    assert parts.refusals(rid) == ["invalid_signature", "invalid_signature", "signature_expired", "invalid_request",
                                   "signature_replayed"]
    assert channels.approvals(rid) == 1


def test_a_decision_that_cannot_be_delivered_is_withdrawn_and_can_be_sent_again(parts):
    key = StaticKey()
    channels = _channels(parts, key)
    rid = held_request(parts).request_id
    raw = _body(rid)
    inbound = _inbound(rid, raw, {signature.HEADER: signature.sign(key().value.encode(), raw)})
    accepted = channels.for_decision(inbound).receive(inbound)
    error = channels.withdraw(accepted, CTX)
    assert error.code == "workflow_unavailable" and channels.approvals(rid) == 0
    # the same signature stays spent (a replay); the sender signs again, with a later timestamp
    with pytest.raises(BrokerError, match="replay"):
        channels.for_decision(inbound).receive(inbound)
    again = _inbound(rid, raw, {signature.HEADER: signature.sign(key().value.encode(), raw, int(time.time()) + 1)})
    assert channels.for_decision(again).receive(again).verdict == "approve"
    assert parts.refusals(rid) == ["workflow_unavailable", "signature_replayed"]


def test_without_a_token_the_entra_channel_refuses_and_journals(parts):
    rid = held_request(parts).request_id
    inbound = _inbound(rid, _body(rid), {})
    with pytest.raises(BrokerError) as refused:
        _channels(parts, StaticKey()).for_decision(inbound).receive(inbound)
    assert refused.value.code == "unauthenticated" and parts.refusals(rid) == ["unauthenticated"]


def test_a_signed_decision_for_one_request_does_not_decide_another(parts):
    key = StaticKey()
    channels = _channels(parts, key)
    first, second = held_request(parts), held_request(parts, sql="DELETE FROM customers WHERE id = 4")
    raw = _body(first.request_id)
    header = {signature.HEADER: signature.sign(key().value.encode(), raw)}
    channels.for_decision(_inbound(first.request_id, raw, header)).receive(_inbound(first.request_id, raw, header))
    replayed = _inbound(second.request_id, raw, header)
    with pytest.raises(BrokerError) as refused:
        channels.for_decision(replayed).receive(replayed)
    assert refused.value.code == "token_wrong_request"
    assert channels.approvals(second.request_id) == 0 and parts.refusals(second.request_id) == ["token_wrong_request"]


@pytest.mark.parametrize("named", [
    lambda rid: None, lambda rid: "", lambda rid: 42, lambda rid: [rid], lambda rid: rid.upper(),
    lambda rid: rid + " ", lambda rid: rid[:-1] + "0" if not rid.endswith("0") else rid[:-1] + "1",
], ids=["missing", "empty", "number", "list", "upper-case", "trailing-space", "another-id"])
def test_a_signed_decision_without_its_own_request_id_is_refused(parts, named):
    key = StaticKey()
    channels = _channels(parts, key)
    rid = held_request(parts).request_id
    data = json.loads(_body(rid))
    value = named(rid)
    if value is None:
        del data["request_id"]
    else:
        data["request_id"] = value
    raw = json.dumps(data).encode()
    inbound = _inbound(rid, raw, {signature.HEADER: signature.sign(key().value.encode(), raw)})
    with pytest.raises(BrokerError) as refused:
        channels.for_decision(inbound).receive(inbound)
    assert refused.value.code in ("invalid_request", "token_wrong_request") and channels.approvals(rid) == 0
