"""The decision desk on real Table Storage: every refusal is refused with its precise code and
journaled; opening a link changes nothing; a decision counts once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from broker.approvals.directory import Approver
from broker.problems import BrokerError
from tests.approvals.conftest import ADA, BO, CTX, CY, REQUESTER, TENANT, form_for, held_request, link


def refused(fn, *args) -> tuple[int, str]:
    with pytest.raises(BrokerError) as caught:
        fn(*args)
    return caught.value.status, caught.value.code


def test_opening_the_page_decides_nothing(parts):
    request = held_request(parts)
    token = link(parts, request)
    for _ in range(3):  # a mail scanner, a link preview, the approver
        view = parts.desk.view(request.request_id, token, CTX)
        assert view.state == "open" and view.nonce
    assert parts.store.get(request.request_id).status == "pending"
    assert parts.store.decisions(request.request_id) == []
    claims = parts.tokens.verify(token, request.request_id)
    assert not parts.store.token_used(request.request_id, claims.token_id)
    assert [e for e, _, _ in parts.events(request.request_id)] == ["execute.pending"]


def test_approve_through_the_form_counts_once_and_is_journaled(parts):
    request = held_request(parts)
    token = link(parts, request)
    form, cookie = form_for(parts, request, token)
    accepted = parts.desk.decide_by_link(request.request_id, form, cookie, CTX)
    assert accepted.event() == {"approver": ADA.key, "name": "Ada Approver", "verdict": "approve", "via": "link"}
    assert [(d.approver, d.verdict) for d in parts.store.decisions(request.request_id)] == [(ADA.key, "approve")]
    assert ("approval.decided", "approve", "") in parts.events(request.request_id)
    # the same link again: a replay
    assert refused(parts.desk.decide_by_link, request.request_id, form, cookie, CTX) == (409, "token_used")
    assert parts.desk.view(request.request_id, token, CTX).state == "used"
    # a second link for the same approver shows that they decided already
    token2 = link(parts, request)
    assert parts.desk.view(request.request_id, token2, CTX).state == "voted"
    assert "token_used" in parts.refusals(request.request_id)


def test_a_second_link_of_the_same_approver_cannot_vote_twice(parts):
    request = held_request(parts, quorum=2)
    first, second = link(parts, request), link(parts, request)
    form1, cookie1 = form_for(parts, request, first)
    form2, cookie2 = form_for(parts, request, second)
    parts.desk.decide_by_link(request.request_id, form1, cookie1, CTX)
    assert refused(parts.desk.decide_by_link, request.request_id, form2, cookie2, CTX) == (409, "already_voted")


def test_forged_altered_expired_and_cross_request_links_are_refused_and_journaled(parts):
    from broker.approvals import ApprovalTokens
    from tests.approvals.conftest import StaticKey

    request = held_request(parts)
    other = held_request(parts)
    rid = request.request_id
    forged = ApprovalTokens(StaticKey()).issue(rid, ADA.key, ADA.name, request.command_digest, request.expires_at)
    altered = link(parts, request)[:-4] + "AAAA"
    expired = link(parts, request, expires_at=datetime.now(UTC) - timedelta(seconds=5))
    cross = link(parts, other)
    assert refused(parts.desk.view, rid, forged, CTX) == (403, "token_invalid")
    assert refused(parts.desk.view, rid, altered, CTX) == (403, "token_invalid")
    assert refused(parts.desk.view, rid, expired, CTX) == (410, "token_expired")
    assert refused(parts.desk.view, rid, cross, CTX) == (403, "token_wrong_request")
    assert refused(parts.desk.view, rid, "", CTX) == (403, "token_invalid")
    for token in (forged, altered, expired, cross):
        form = {"t": token, "nonce": "1.a.b", "verdict": "approve"}
        assert refused(parts.desk.decide_by_link, rid, form, "1.a.b", CTX)[0] in (403, 410)
    page_refusals = ["token_invalid", "token_invalid", "token_expired", "token_wrong_request", "token_invalid"]
    form_refusals = ["token_invalid", "token_invalid", "token_expired", "token_wrong_request"]
    assert sorted(parts.refusals(rid)) == sorted([*page_refusals, *form_refusals])
    assert parts.store.decisions(rid) == []
    assert parts.store.get(rid).status == "pending"


def test_a_link_for_another_command_is_refused(parts):
    request = held_request(parts)
    token = link(parts, request, digest="sha256:" + "00" * 32)
    assert refused(parts.desk.view, request.request_id, token, CTX) == (403, "token_command_mismatch")


def test_the_requester_can_never_approve_their_own_request(parts):
    request = held_request(parts)
    tenant, oid = REQUESTER.split("/")
    me = Approver(tenant_id=tenant, object_id=oid, name="Devin in disguise", email="x@y.z", groups=("dba-approvers",))
    token = link(parts, request, me)
    assert refused(parts.desk.view, request.request_id, token, CTX) == (403, "self_approval")
    # compared by tenant + object id, not by name: the automation door says the same
    assert refused(parts.desk.decide_by_automation, request.request_id, REQUESTER, "Ada Approver", "approve",
                   "hmac", CTX) == (403, "self_approval")
    assert parts.refusals(request.request_id) == ["self_approval", "self_approval"]


def test_someone_outside_the_required_groups_cannot_decide(parts):
    request = held_request(parts)
    assert refused(parts.desk.view, request.request_id, link(parts, request, CY), CTX) == (403, "not_an_approver")
    stranger = f"{TENANT}/99999999-9999-4999-8999-999999999999"
    assert refused(parts.desk.decide_by_automation, request.request_id, stranger, "?", "approve", "hmac",
                   CTX) == (403, "not_an_approver")


def test_csrf_without_the_page_cookie_is_refused(parts):
    request = held_request(parts)
    token = link(parts, request)
    form, cookie = form_for(parts, request, token)
    assert refused(parts.desk.decide_by_link, request.request_id, form, "", CTX) == (403, "csrf_failed")
    assert refused(parts.desk.decide_by_link, request.request_id, {**form, "nonce": ""}, cookie, CTX) == (
        403, "csrf_failed")
    assert parts.store.decisions(request.request_id) == []
    # the refused attempts did not burn the link: the real form still works
    parts.desk.decide_by_link(request.request_id, form, cookie, CTX)


def test_decisions_after_the_end_are_refused(parts):
    request = held_request(parts)
    form, cookie = form_for(parts, request, link(parts, request))
    parts.service.conclude(request.request_id, {"status": "denied", "approvals": [],
                                                "denied_by": {"approver": BO.key, "name": BO.name}})
    assert refused(parts.desk.decide_by_link, request.request_id, form, cookie, CTX) == (409, "already_decided")
    assert parts.desk.view(request.request_id, link(parts, request), CTX).state == "ended"

    expired = held_request(parts)
    form, cookie = form_for(parts, expired, link(parts, expired))
    parts.service.conclude(expired.request_id, {"status": "expired", "approvals": []})
    assert refused(parts.desk.decide_by_link, expired.request_id, form, cookie, CTX) == (410, "expired")
    assert refused(parts.desk.decide_by_automation, expired.request_id, BO.key, BO.name, "deny", "hmac",
                   CTX) == (410, "expired")


def test_a_verdict_must_be_approve_or_deny(parts):
    request = held_request(parts)
    form, cookie = form_for(parts, request, link(parts, request), verdict="maybe")
    assert refused(parts.desk.decide_by_link, request.request_id, form, cookie, CTX) == (400, "invalid_request")


def test_release_undoes_an_undelivered_decision(parts):
    request = held_request(parts)
    form, cookie = form_for(parts, request, link(parts, request))
    accepted = parts.desk.decide_by_link(request.request_id, form, cookie, CTX)
    parts.store.release(request.request_id, accepted.token_id, accepted.approver)
    assert parts.store.decisions(request.request_id) == []
    again = parts.desk.decide_by_link(request.request_id, form, cookie, CTX)
    assert again.verdict == "approve"


def test_automation_door_records_the_named_approver(parts):
    request = held_request(parts, quorum=2)
    a = parts.desk.decide_by_automation(request.request_id, ADA.key, ADA.name, "approve", "hmac", CTX)
    b = parts.desk.decide_by_automation(request.request_id, BO.key, BO.name, "deny", "entra", CTX)
    assert (a.verdict, b.verdict) == ("approve", "deny")
    assert refused(parts.desk.decide_by_automation, request.request_id, ADA.key, ADA.name, "approve", "hmac",
                   CTX) == (409, "already_voted")
