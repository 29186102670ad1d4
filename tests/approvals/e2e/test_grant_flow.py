"""Just-in-time grants end to end: approved -> the execute path runs writes without approval
until the expiry -> the durable timer revokes it on time -> writes wait for approval again."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from tests.approvals.e2e.conftest import Flow

pytestmark = pytest.mark.e2e


def request_grant(flow: Flow, duration: str = "PT5M") -> dict:
    r = flow.call("POST", "/api/grants", json={"target": "demo-postgres", "level": "write", "duration": duration,
                                               "reason": "e2e: INC-77 data fix"})
    assert r.status_code == 202, r.text
    return r.json()


def test_grant_approved_used_then_revoked_on_time(flow):
    pending = request_grant(flow)
    rid = pending["request_id"]
    assert flow.execute("DELETE FROM customers WHERE id = 220").status_code == 202  # no grant yet
    flow.decide(flow.links(rid)["ada@dev.example"])
    active = flow.wait_status(rid, "active")
    expires = datetime.fromisoformat(active["grant"]["expires_at"])
    assert timedelta(minutes=4) < expires - datetime.fromisoformat(active["created_at"]) <= timedelta(minutes=6)

    r = flow.execute("DELETE FROM customers WHERE id = 221")
    assert r.status_code == 200, r.text
    assert r.json()["decision"]["rule_id"] == f"grant:{rid}" and r.json()["affected_rows"] == 1
    assert flow.call("GET", "/api/grants").json()["grants"][0]["status"] == "active"
    # the grant covers writes, not destructive commands
    assert flow.execute("DELETE FROM customers").status_code in (403, 202)

    flow.advance_to(expires + timedelta(seconds=1))
    revoked = flow.wait_status(rid, "revoked")
    assert revoked["ended_by"]["how"] == "expired"
    assert flow.execute("DELETE FROM customers WHERE id = 222").status_code == 202  # approval needed again
    assert flow.rows("SELECT id FROM customers WHERE id = 222")
    events = flow.events(rid)
    for event in ("grant.requested", "approval.notified", "approval.decided", "approval.approved",
                  "grant.activated", "grant.revoked"):
        assert event in events, flow.dump(rid)


def test_an_approver_revokes_a_grant_early(flow):
    rid = request_grant(flow, "PT30M")["request_id"]
    flow.decide(flow.links(rid)["bo@dev.example"])
    flow.wait_status(rid, "active")
    assert flow.call("POST", f"/api/grants/{rid}/revoke", "outsider").status_code == 403
    r = flow.call("POST", f"/api/grants/{rid}/revoke", "approver")
    assert r.status_code == 200 and r.json()["status"] == "revoked", r.text
    assert flow.execute("DELETE FROM customers WHERE id = 223").status_code == 202
    flow.idle()
    status = flow.status(rid)
    assert status["status"] == "revoked" and status["ended_by"]["as"] == "approver"
    assert flow.events(rid).count("grant.revoked") == 1


def test_grant_requests_that_cannot_be_granted(flow):
    def post(**body):
        return flow.call("POST", "/api/grants", json={"target": "demo-postgres", "level": "write",
                                                      "duration": "PT5M", "reason": "x", **body})

    assert post(duration="PT2H").json()["code"] == "invalid_duration"
    assert post(level="read").json()["code"] == "grant_not_needed"
    assert post(target="nope").json()["code"] == "unknown_target"
    assert post(level="admin").status_code == 400
