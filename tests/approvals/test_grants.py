"""Grants: the policy seam (what a grant lifts and never lifts) and the grant lifecycle on real
Table Storage (request, activate, honoured until expiry, end, early revoke)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from broker.catalog import Catalog
from broker.grants import GrantBody, GrantService, iso_duration
from broker.guard import Classification, Risk
from broker.identity import Principal
from broker.policy import Grant, Policy
from broker.problems import BrokerError
from tests.approvals.conftest import ADA, BO, CTX, TENANT

DEVIN = Principal(TENANT, "11111111-1111-4111-8111-111111111111", display_name="Devin", kind="app",
                  roles=frozenset({"Broker.Caller"}))
POLICY = Policy.from_text("""
version: 1
defaults: {max_grant_duration: 1h}
rules:
  - id: read
    when: {roles: [Broker.Caller], targets: [demo-postgres], risk: [read]}
    effect: allow
  - id: writes
    when: {roles: [Broker.Caller], targets: [demo-postgres], risk: [write]}
    effect: approve
    approval: {groups: [dba-approvers], quorum: 1, timeout_seconds: 600}
  - id: no-drops
    when: {targets: [demo-postgres], risk: [destructive]}
    effect: deny
""")
CATALOG = Catalog.model_validate({"targets": {
    "demo-postgres": {"engine": "postgres", "credential": {"source": "key-vault", "secret": "x"}},
    "other-db": {"engine": "postgres", "credential": {"source": "key-vault", "secret": "y"}}}})
TARGET = CATALOG.targets["demo-postgres"]


def cls(risk: Risk) -> Classification:
    return Classification(risk=risk, reason="test", language="sql")


def grant(level: str = "write", *, who: Principal = DEVIN, target: str = "demo-postgres",
          minutes: int = 30) -> Grant:
    return Grant(who.key, target, level, datetime.now(UTC) + timedelta(minutes=minutes), "g1")  # type: ignore[arg-type]


# --- the policy seam as the execute path uses it (the policy's own tests cover the rest) ---

def test_a_write_grant_turns_approve_into_allow():
    assert POLICY.decide(DEVIN, TARGET, cls(Risk.WRITE)).effect == "approve"
    decision = POLICY.decide(DEVIN, TARGET, cls(Risk.WRITE), grants=[grant()])
    assert (decision.effect, decision.grant_id) == ("allow", "g1")


@pytest.mark.parametrize(("the_grant", "risk"), [
    (grant("read"), Risk.WRITE),  # read does not cover write
    (grant(), Risk.DESTRUCTIVE),  # a deny rule is never lifted
    (grant(minutes=-1), Risk.WRITE),  # expired
    (grant(who=Principal(TENANT, "someone-else")), Risk.WRITE),  # another principal's grant
    (grant(target="other-db"), Risk.WRITE),  # another target's grant
])
def test_what_a_grant_does_not_lift(the_grant, risk):
    assert POLICY.decide(DEVIN, TARGET, cls(risk), grants=[the_grant]).effect != "allow"


# --- the service on storage ---

@pytest.fixture
def grants(parts) -> GrantService:
    return GrantService(catalog=CATALOG, policy=POLICY, store=parts.grant_store, approvals=parts.service,
                        directory=parts.directory, journal=parts.journal)


def body(**overrides: object) -> GrantBody:
    return GrantBody.parse({"target": "demo-postgres", "level": "write", "duration": "PT30M",
                            "reason": "INC-7 data fix", **overrides})


def refused(fn, *args) -> tuple[int, str]:
    with pytest.raises(BrokerError) as caught:
        fn(*args)
    return caught.value.status, caught.value.code


def test_grant_body_parses_iso_durations():
    assert body().duration == timedelta(minutes=30)
    assert iso_duration(timedelta(hours=1, minutes=5)) == "PT1H5M"
    with pytest.raises(BrokerError) as caught:
        GrantBody.parse({"target": "demo-postgres", "level": "admin", "duration": "soon", "reason": ""})
    assert {e["field"] for e in caught.value.extra["errors"]} == {"level", "duration", "reason"}


def test_grant_requests_are_judged_by_the_policy(grants):
    assert refused(grants.request, DEVIN, body(duration="PT2H"), CTX) == (400, "invalid_duration")
    assert refused(grants.request, DEVIN, body(duration="PT0S"), CTX) == (400, "invalid_duration")
    assert refused(grants.request, DEVIN, body(level="read"), CTX) == (409, "grant_not_needed")
    assert refused(grants.request, DEVIN, body(target="other-db"), CTX) == (403, "policy_denied")
    assert refused(grants.request, DEVIN, body(target="nope"), CTX) == (404, "unknown_target")


def test_grant_lifecycle_request_activate_expire(parts, grants):
    request = grants.request(DEVIN, body(), CTX)
    held = parts.store.get(request.request_id)
    assert (held.kind, held.status, held.grant["duration"]) == ("grant", "pending", "PT30M")
    assert grants.store.active(DEVIN.key, "demo-postgres") == []
    parts.service.conclude(request.request_id, {"status": "approved", "approvals": [{"approver": ADA.key}]})
    before = datetime.now(UTC).replace(microsecond=0)
    activated = grants.activate(request.request_id, 1800)
    expires = datetime.fromisoformat(activated["expires_at"])
    assert activated["status"] == "active" and before + timedelta(seconds=1800) <= expires
    assert grants.activate(request.request_id, 1800) == activated  # a re-delivered activity
    active = grants.store.active(DEVIN.key, "demo-postgres")
    assert [(g.id, g.level, g.expires_at) for g in active] == [(request.request_id, "write", expires)]
    # a late timer cannot stretch it: past its expiry the row is not honoured
    assert grants.store.active(DEVIN.key, "demo-postgres", now=expires + timedelta(seconds=1)) == []
    assert grants.end(request.request_id, "expired", {"id": "timer", "name": "expiry"})["status"] == "revoked"
    assert grants.end(request.request_id, "expired", {"id": "timer"}) == {"status": "revoked", "already": True}
    assert grants.store.active(DEVIN.key, "demo-postgres") == []
    # the approval request ended at approved; the grant's end is the grant row's, shown by the view
    assert parts.store.get(request.request_id).status == "approved"
    assert parts.service.status(request.request_id, DEVIN)["status"] == "revoked"
    events = [e for e, _, _ in parts.events(request.request_id)]
    assert events.count("grant.requested") == 1 and events.count("grant.activated") == 1
    assert events.count("grant.revoked") == 1


def test_early_revoke_by_an_approver_or_the_grantee_only(parts, grants):
    request = grants.request(DEVIN, body(), CTX)
    parts.service.conclude(request.request_id, {"status": "approved", "approvals": [{"approver": ADA.key}]})
    grants.activate(request.request_id, 1800)
    stranger = Principal(TENANT, "44444444-4444-4444-8444-444444444444", display_name="Cy")
    assert refused(grants.revoke, request.request_id, stranger) == (403, "not_an_approver")
    bo = Principal(TENANT, BO.object_id, display_name="Bo")
    assert grants.revoke(request.request_id, bo)["status"] == "revoked"
    assert grants.store.active(DEVIN.key, "demo-postgres") == []
    assert refused(grants.revoke, request.request_id, DEVIN) == (409, "not_active")
    record = grants.store.get(DEVIN.key, request.request_id)
    assert record.ended_by == {"how": "revoked", "id": bo.key, "name": "Bo", "as": "approver"}


def test_denied_grant_request_never_activates(parts, grants):
    request = grants.request(DEVIN, body(), CTX)
    parts.service.conclude(request.request_id, {"status": "denied", "approvals": []})
    grants.conclude_unapproved(request.request_id, "denied")
    assert grants.store.get(DEVIN.key, request.request_id).status == "denied"
    assert refused(grants.activate, request.request_id, 300)[0] == 409
    assert grants.list_for(DEVIN)[0]["status"] == "denied"
