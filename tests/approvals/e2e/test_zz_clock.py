"""The tests that move the Durable engine's manual clock, in the order they must run.

The engine's clock only moves forward, while the broker computes deadlines from the wall clock;
once a test has moved the engine past a deadline, every later deadline nearer than that is
already due for the engine. So these run last in the package (this module's name sorts last),
the shorter jump first: the grant's expiry (minutes), then an approval's deadline (15 min).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest

from tests.approvals.e2e.conftest import touch
from tests.approvals.e2e.test_grant_flow import request_grant

pytestmark = pytest.mark.e2e
ADA = "ada@dev.example"


def test_grant_approved_used_then_revoked_on_time(flow):
    pending = request_grant(flow)
    rid = pending["request_id"]
    assert flow.execute(touch(220)).status_code == 202  # no grant yet
    flow.decide(flow.links(rid)["ada@dev.example"])
    active = flow.wait_status(rid, "active")
    expires = datetime.fromisoformat(active["grant"]["expires_at"])
    assert timedelta(minutes=4) < expires - datetime.fromisoformat(active["created_at"]) <= timedelta(minutes=6)

    r = flow.execute(touch(221))
    assert r.status_code == 200, r.text
    assert r.json()["decision"]["grant_id"] == rid and r.json()["affected_rows"] == 1
    assert flow.runs(221) == 1
    assert flow.call("GET", "/api/grants").json()["grants"][0]["status"] == "active"
    # the grant covers writes, not destructive commands
    assert flow.execute("DELETE FROM customers").status_code in (403, 202)

    flow.advance_to(expires + timedelta(seconds=1))
    revoked = flow.wait_status(rid, "revoked")
    assert revoked["ended_by"]["how"] == "expired"
    assert flow.execute(touch(222)).status_code == 202  # approval needed again
    assert flow.runs(222) == 0
    events = flow.events(rid)
    for event in ("grant.requested", "approval.notified", "approval.decided", "approval.approved",
                  "grant.activated", "grant.revoked"):
        assert event in events, flow.dump(rid)


def test_nobody_answers_it_expires_and_nothing_runs(flow):
    pending = flow.pending(touch(204))
    rid = pending["request_id"]
    link = flow.links(rid)[ADA]
    page = flow.open(link)
    flow.advance_to(datetime.fromisoformat(pending["expires_at"]) + timedelta(seconds=1))
    assert flow.wait_status(rid, "expired")["status"] == "expired"
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page.text))
    late = flow.http.post(link.split("?")[0], data={**fields, "verdict": "approve"},
                          headers={"Cookie": page.headers["set-cookie"].split(";")[0]})
    assert late.status_code == 410
    assert flow.runs(204) == 0
    assert "execute.intent" not in flow.events(rid) and "approval.expired" in flow.events(rid)
    assert "expired" in flow.refusals(rid)
