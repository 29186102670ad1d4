"""Independent approvers, tried as an attacker would: the requester in every spelling, an agent
identity that also holds an approver role, a delegate deciding for a named person, one approver
through several channels, and a policy that wants approvers who signed in themselves."""

from __future__ import annotations

import pytest

from broker.approvals.directory import Approver, ApproverDirectory, DirectoryError
from broker.approvals.independence import CALLER_ROLE, DELEGATE_ROLE, Actor, approver_key
from broker.problems import BrokerError
from tests.approvals.conftest import ADA, AGENT_APP_ID, BO, CTX, REQUESTER, TENANT, form_for, held_request, link

AGENT_OID = REQUESTER.split("/")[1]
LOGIC_APP = Actor(TENANT, "55555555-5555-4555-8555-555555555555", "1091c000-0000-4000-8000-0000000001a0", "app",
                  "approvals Logic App", frozenset({DELEGATE_ROLE}))


def refused(fn, *args, **kwargs) -> tuple[int, str]:
    with pytest.raises(BrokerError) as caught:
        fn(*args, **kwargs)
    return caught.value.status, caught.value.code


def decide(parts, request, approver: str, via: str, actor: Actor | None = None, verdict: str = "approve"):
    return parts.desk.decide_by_automation(request.request_id, approver, "someone", verdict, via, CTX, actor)


@pytest.mark.parametrize("spelling", [
    REQUESTER, REQUESTER.upper(), f" {REQUESTER} ", f"{TENANT.upper()}/{AGENT_OID}",
    f"{'0' * 8}-0000-4000-8000-{'0' * 12}/{AGENT_OID}",  # the same object id named in another tenant
    f"{TENANT}/{AGENT_OID.upper()}",
])
@pytest.mark.parametrize("via", ["hmac", "entra-app"])
def test_the_requester_never_decides_in_any_spelling(parts, spelling, via):
    request = held_request(parts)
    actor = LOGIC_APP if via == "entra-app" else None
    assert refused(decide, parts, request, spelling, via, actor) == (403, "self_approval")
    assert parts.refusals(request.request_id) == ["self_approval"]
    assert parts.store.decisions(request.request_id) == []


def test_a_link_issued_to_the_requesters_object_id_in_uppercase_is_refused(parts):
    request = held_request(parts)
    me = Approver(tenant_id=TENANT, object_id=AGENT_OID.upper(), name="Devin in disguise", email="x@y.z",
                  groups=("dba-approvers",))
    assert refused(parts.desk.view, request.request_id, link(parts, request, me), CTX) == (403, "self_approval")


@pytest.mark.parametrize("roles", [{CALLER_ROLE, "Broker.Approver"}, {CALLER_ROLE, DELEGATE_ROLE},
                                   {CALLER_ROLE, DELEGATE_ROLE, "Broker.Approver"}, {CALLER_ROLE}])
@pytest.mark.parametrize("kind", ["app", "user"])
def test_an_identity_holding_broker_caller_never_decides_even_for_someone_it_names(parts, roles, kind):
    """The attack from the issue: an agent that also holds the approver role reaches a quorum of 2
    alone by naming two people. Another agent (not the requester) fares no better."""
    request = held_request(parts, quorum=2)
    for oid in (AGENT_OID, "66666666-6666-4666-8666-666666666666"):
        agent = Actor(TENANT, oid, AGENT_APP_ID if oid == AGENT_OID else "", kind, "an agent", frozenset(roles))
        for named in (ADA, BO):
            assert refused(decide, parts, request, named.key, "entra-app", agent) == (403, "caller_cannot_approve")
    assert parts.store.decisions(request.request_id) == []
    assert parts.store.get(request.request_id).status == "pending"


@pytest.mark.parametrize("actor", [
    Actor(TENANT, AGENT_OID, "", "app", "the agent itself, roles dropped", frozenset({DELEGATE_ROLE})),
    Actor(TENANT, AGENT_OID.upper(), "", "app", "uppercase", frozenset({DELEGATE_ROLE})),
    Actor(TENANT, "77777777-7777-4777-8777-777777777777", AGENT_APP_ID, "app", "same app, other SP",
          frozenset({DELEGATE_ROLE})),
    Actor(TENANT, "77777777-7777-4777-8777-777777777777", AGENT_APP_ID.upper(), "user",
          "a user token through the agent's app", frozenset({DELEGATE_ROLE})),
])
def test_the_requester_as_a_delegate_is_self_approval(parts, actor):
    request = held_request(parts)
    assert refused(decide, parts, request, ADA.key, "entra-app", actor) == (403, "self_approval")


@pytest.mark.parametrize("actor", [
    Actor(TENANT, LOGIC_APP.object_id, LOGIC_APP.app_id, "app", "approver role only", frozenset({"Broker.Approver"})),
    Actor(TENANT, LOGIC_APP.object_id, LOGIC_APP.app_id, "app", "no roles"),
    Actor(TENANT, BO.object_id, "04b07795-8ddb-461a-bbee-02f9e1bf7b46", "user", "Bo names Ada",
          frozenset({"Broker.Approver", DELEGATE_ROLE})),  # a person never decides for another person
])
def test_deciding_for_someone_else_needs_an_application_with_the_delegate_role(parts, actor):
    request = held_request(parts)
    assert refused(decide, parts, request, ADA.key, "entra-app", actor) == (403, "delegate_role_required")


def test_a_delegate_decides_for_the_named_approver_and_the_journal_says_who_delivered_it(parts):
    request = held_request(parts)
    accepted = decide(parts, request, ADA.key.upper(), "entra-app", LOGIC_APP)
    assert accepted.approver == ADA.key  # one spelling
    decided = [s.record for s in parts.reader.by_request(request.request_id) if s.record.event == "approval.decided"]
    assert decided[0].outcome["via"] == "entra-app" and decided[0].outcome["signed_in"] is False
    assert decided[0].outcome["on_behalf_by"]["object_id"] == LOGIC_APP.object_id
    assert decided[0].principal["object_id"] == ADA.object_id


@pytest.mark.parametrize("second", ["entra-app", "hmac", "entra"])
def test_an_approver_counts_once_across_channels_and_spellings(parts, second):
    request = held_request(parts, quorum=2)
    token = link(parts, request, ADA)
    form, cookie = form_for(parts, request, token)
    parts.desk.decide_by_link(request.request_id, form, cookie, CTX)
    spelled = f" {ADA.tenant_id.upper()}/{ADA.object_id.upper()}"
    actor = {"entra-app": LOGIC_APP, "hmac": None,
             "entra": Actor(ADA.tenant_id, ADA.object_id, "", "user", ADA.name, frozenset({"Broker.Approver"}))}
    assert refused(decide, parts, request, spelled, second, actor[second]) == (409, "already_voted")
    assert len(parts.store.decisions(request.request_id)) == 1
    assert parts.desk.view(request.request_id, link(parts, request, ADA), CTX).state == "voted"


def test_a_policy_can_require_approvers_who_signed_in_themselves(parts):
    request = held_request(parts, quorum=1, require_sign_in=True)
    token = link(parts, request, ADA)
    assert parts.desk.view(request.request_id, token, CTX).approve_here is False
    form, cookie = form_for(parts, request, token)
    assert refused(parts.desk.decide_by_link, request.request_id, form, cookie, CTX) == (403, "sign_in_required")
    assert refused(decide, parts, request, ADA.key, "entra-app", LOGIC_APP) == (403, "sign_in_required")
    assert refused(decide, parts, request, ADA.key, "hmac") == (403, "sign_in_required")
    assert parts.store.decisions(request.request_id) == []
    ada = Actor(ADA.tenant_id, ADA.object_id, "", "user", ADA.name, frozenset({"Broker.Approver"}))
    accepted = decide(parts, request, ADA.key, "entra", ada)
    assert accepted.via == "entra"
    decided = [s.record for s in parts.reader.by_request(request.request_id) if s.record.event == "approval.decided"]
    assert decided[0].outcome["signed_in"] is True and "on_behalf_by" not in decided[0].outcome


def test_under_sign_in_a_link_may_still_deny(parts):
    request = held_request(parts, require_sign_in=True)
    form, cookie = form_for(parts, request, link(parts, request, BO), "deny")
    assert parts.desk.decide_by_link(request.request_id, form, cookie, CTX).verdict == "deny"


@pytest.mark.parametrize("roles", [("Broker.Approver", CALLER_ROLE), (CALLER_ROLE,)])
def test_the_approvers_file_refuses_an_agent(roles):
    with pytest.raises(ValueError, match=r"Broker\.Caller"):
        Approver(tenant_id=TENANT, object_id=AGENT_OID, name="Devin", email="d@x.y", roles=roles)


def test_the_approvers_file_refuses_one_person_in_two_spellings():
    twin = Approver(tenant_id=ADA.tenant_id.upper(), object_id=ADA.object_id.upper(), name="Ada again",
                    email="ada2@dev.example")
    with pytest.raises(DirectoryError):
        ApproverDirectory((ADA, twin))


@pytest.mark.parametrize("tenant,oid", [("", ADA.object_id), (TENANT, ""), (TENANT, "ada"), (TENANT, None),
                                        (TENANT, f"{{{ADA.object_id}}}"), (["x"], ADA.object_id)])
def test_a_named_approver_is_two_guids(tenant, oid):
    with pytest.raises(BrokerError) as caught:
        approver_key(tenant, oid)
    assert caught.value.code == "invalid_request"
