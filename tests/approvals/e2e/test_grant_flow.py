"""Just-in-time grants end to end: approved -> the execute path runs writes without approval
until the expiry -> the durable timer revokes it on time -> writes wait for approval again."""

from __future__ import annotations

import pytest

from tests.approvals.e2e.conftest import Flow, touch

pytestmark = pytest.mark.e2e


def request_grant(flow: Flow, duration: str = "PT5M") -> dict:
    r = flow.call("POST", "/api/grants", json={"target": "demo-postgres", "level": "write", "duration": duration,
                                               "reason": "e2e: INC-77 data fix"})
    assert r.status_code == 202, r.text
    return r.json()



def test_an_approver_revokes_a_grant_early(flow):
    rid = request_grant(flow, "PT30M")["request_id"]
    flow.decide(flow.links(rid)["bo@dev.example"])
    flow.wait_status(rid, "active")
    assert flow.call("POST", f"/api/grants/{rid}/revoke", "outsider").status_code == 403
    r = flow.call("POST", f"/api/grants/{rid}/revoke", "approver")
    assert r.status_code == 200 and r.json()["status"] == "revoked", r.text
    assert flow.execute(touch(223)).status_code == 202
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
