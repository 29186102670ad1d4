"""Command approval end to end on the dev stack: the agent's 202, the approvers' mails and pages,
the Durable orchestration on the devhost's engine, the approved command run once, the result at
the status URL; and every way it must not happen."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from broker.approvals import ApprovalTokens
from broker.approvals import signature as hmac_signature
from broker.secrets import SecretValue
from devhost.identities import DEV_TENANT, IDENTITIES
from tests.approvals.e2e.conftest import BOUNDED_GROUP, SIZED_GROUP, TWO_PERSON_GROUP, Flow, touch

pytestmark = pytest.mark.e2e
ADA, BO = "ada@dev.example", "bo@dev.example"


def signing_key(flow: Flow, name: str) -> SecretValue:
    entry = flow.stack.keyvault.store.get(name, None)  # type: ignore[union-attr]
    return SecretValue(entry["value"], entry["version"])


def test_approve_runs_the_exact_command_once_and_the_result_is_fetched(flow):
    assert flow.runs(201) == 0
    pending = flow.pending(touch(201))
    rid = pending["request_id"]
    assert pending["status"] == "pending" and pending["status_url"].endswith(f"/api/requests/{rid}")
    assert datetime.fromisoformat(pending["expires_at"]) > datetime.now(UTC) + timedelta(minutes=14)
    links = flow.links(rid)
    assert sorted(links) == [ADA, BO]  # both DBAs, never the requester
    assert flow.runs(201) == 0, "nothing runs before an approval"

    outcome = flow.decide(links[ADA])
    assert outcome.status_code == 200 and "Approved" in outcome.text
    done = flow.wait_status(rid, "done", "failed")
    assert done["status"] == "done", done
    assert done["result"]["affected_rows"] == 1 and done["result"]["command_status"] == "UPDATE 1"
    assert [(d["approver"], d["verdict"]) for d in done["decisions"]] == [("Ada Approver", "approve")]
    assert flow.runs(201) == 1
    events = flow.events(rid)
    assert events.count("execute.intent") == 1 and events.count("execute.outcome") == 1
    for event in ("execute.pending", "approval.notified", "approval.decided", "approval.approved"):
        assert event in events, flow.dump(rid)

    # Ada's link is spent; Bo's link comes after the end: neither page offers a button
    page = flow.open(links[ADA])
    assert page.status_code == 200 and "<form" not in page.text
    late = flow.open(links[BO])
    assert "no longer takes decisions" in late.text and "<form" not in late.text
    flow.idle()
    assert flow.events(rid).count("execute.intent") == 1


def test_opening_a_link_decides_nothing(flow):
    rid = flow.pending(touch(202))["request_id"]
    link = flow.links(rid)[ADA]
    for agent in ("Microsoft Office Protocol Discovery", "Slackbot-LinkExpanding 1.0", "Mozilla/5.0"):
        r = flow.http.get(link, headers={"User-Agent": agent})
        assert r.status_code == 200 and "Approve" in r.text
        assert r.headers["content-security-policy"].startswith("default-src 'none'")
    flow.idle()
    status = flow.status(rid)
    assert status["status"] == "pending" and status["decisions"] == []
    assert flow.runs(202) == 0
    flow.decide(link, "deny")


def test_a_denial_ends_it_and_nothing_runs(flow):
    rid = flow.pending(touch(203))["request_id"]
    links = flow.links(rid)
    r = flow.decide(links[BO], "deny")
    assert r.status_code == 200 and "Denied" in r.text
    status = flow.wait_status(rid, "denied")
    assert status["ended_by"]["approver"] == f"{DEV_TENANT}/{IDENTITIES['approver2'].object_id}"
    assert flow.runs(203) == 0
    late = flow.open(links[ADA])
    assert "no longer takes decisions" in late.text and "<form" not in late.text
    flow.idle()
    assert "execute.intent" not in flow.events(rid) and "approval.denied" in flow.events(rid)



def test_a_quorum_of_two_needs_two_different_approvers(flow):
    token = flow.token("devin", groups=("agents", TWO_PERSON_GROUP))
    pending = flow.pending(touch(205), token=token)
    rid = pending["request_id"]
    assert pending["approval"]["quorum"] == 2
    links = flow.links(rid)
    assert "1 of 2" in flow.decide(links[ADA]).text
    flow.idle()
    status = flow.status(rid, token=token)
    assert status["status"] == "pending" and len(status["decisions"]) == 1
    assert flow.runs(205) == 0
    flow.decide(links[BO])
    assert flow.wait_status(rid, "done", "failed")["status"] == "done"
    assert flow.runs(205) == 1


def test_self_approval_is_refused_and_journaled(flow):
    rid = flow.pending(touch(206))["request_id"]
    devin = IDENTITIES["devin"]
    # a link for the requester, correctly signed: still refused (compared by tenant + object id)
    tokens = ApprovalTokens(lambda: signing_key(flow, "approval-signing-key"))
    link = tokens.issue(rid, f"{DEV_TENANT}/{devin.object_id}", "Ada Approver", flow.status(rid)["command_digest"],
                        datetime.now(UTC) + timedelta(minutes=5))
    r = flow.http.get(f"/api/approvals/{rid}", params={"t": link})
    assert r.status_code == 403 and "self_approval" in r.text
    # a signed automation decision naming the requester
    body = json.dumps({"request_id": rid, "verdict": "approve",
                       "approver": {"tenant_id": DEV_TENANT, "object_id": devin.object_id,
                                    "name": "Ada Approver"}}).encode()
    signed = hmac_signature.sign(signing_key(flow, "approval-hmac-key").value.encode(), body)
    r = flow.http.post(f"/api/approvals/{rid}/decision", content=body,
                       headers={"X-Broker-Signature": signed, "Content-Type": "application/json"})
    assert r.status_code == 403 and r.json()["code"] == "self_approval"
    assert flow.refusals(rid) == ["self_approval", "self_approval"]
    assert flow.status(rid)["status"] == "pending"
    flow.decide(flow.links(rid)[ADA], "deny")


def test_forged_expired_and_replayed_links_are_refused_and_journaled(flow):
    rid = flow.pending(touch(207))["request_id"]
    real = flow.links(rid)[ADA]
    digest = flow.status(rid)["command_digest"]
    ada = f"{DEV_TENANT}/{IDENTITIES['approver'].object_id}"
    forged = ApprovalTokens(lambda: SecretValue("f" * 43, "x")).issue(rid, ada, "Ada", digest,
                                                                     datetime.now(UTC) + timedelta(minutes=5))
    expired = ApprovalTokens(lambda: signing_key(flow, "approval-signing-key")).issue(
        rid, ada, "Ada", digest, datetime.now(UTC) - timedelta(seconds=1))
    assert flow.http.get(f"/api/approvals/{rid}", params={"t": forged}).status_code == 403
    assert flow.http.get(f"/api/approvals/{rid}", params={"t": expired}).status_code == 410
    altered = real[:-3] + ("abc" if not real.endswith("abc") else "xyz")
    assert flow.http.get(altered).status_code == 403
    page = flow.open(real)
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page.text))
    cookie = page.headers["set-cookie"].split(";")[0]
    flow.http.cookies.clear()  # as a page on another site would: the SameSite=Strict cookie stays home
    no_cookie = flow.http.post(real.split("?")[0], data={**fields, "verdict": "approve"})
    assert no_cookie.status_code == 403 and "csrf_failed" in no_cookie.text
    cross_site = flow.http.post(real.split("?")[0], data={**fields, "verdict": "approve"},
                                headers={"Cookie": cookie, "Origin": "https://evil.example"})
    assert cross_site.status_code == 403
    first = flow.http.post(real.split("?")[0], data={**fields, "verdict": "approve"}, headers={"Cookie": cookie})
    assert first.status_code == 200
    again = flow.http.post(real.split("?")[0], data={**fields, "verdict": "approve"}, headers={"Cookie": cookie})
    assert again.status_code == 409 and "token_used" in again.text
    assert flow.wait_status(rid, "done")["status"] == "done"
    assert flow.refusals(rid) == sorted(["token_invalid", "token_expired", "token_invalid", "csrf_failed",
                                         "csrf_failed", "token_used"])
    assert flow.events(rid).count("execute.intent") == 1


def test_only_the_requester_and_auditors_see_a_request(flow):
    rid = flow.pending(touch(208))["request_id"]
    for identity, code in (("approver", 403), ("outsider", 403), ("auditor", 200), ("devin", 200)):
        r = flow.call("GET", f"/api/requests/{rid}", identity)
        assert r.status_code == code, (identity, r.text)
    assert flow.call("GET", f"/api/requests/{rid}", None).status_code == 401
    flow.decide(flow.links(rid)[ADA], "deny")


def test_logic_app_decisions_by_entra_token_and_by_signature(flow):
    token = flow.token("devin", groups=("agents", TWO_PERSON_GROUP))
    rid = flow.pending(touch(209), token=token)["request_id"]
    # an approver's own Entra token
    r = flow.call("POST", f"/api/approvals/{rid}/decision", "approver", json={"verdict": "approve"})
    assert r.status_code == 200, r.text
    assert r.json() == {"request_id": rid, "recorded": True, "verdict": "approve", "via": "entra",
                        "approvals": 1, "quorum": 2}
    # the requester's token (an agent: Broker.Caller) never decides
    assert flow.call("POST", f"/api/approvals/{rid}/decision", "devin",
                     json={"verdict": "approve"}).json()["code"] == "caller_cannot_approve"
    # a Logic App signing the body for Bo
    body = json.dumps({"request_id": rid, "verdict": "approve", "approver": {"tenant_id": DEV_TENANT,
                                                          "object_id": IDENTITIES["approver2"].object_id,
                                                          "name": "Bo Approver"}}).encode()
    key = signing_key(flow, "approval-hmac-key").value.encode()
    bad = flow.http.post(f"/api/approvals/{rid}/decision", content=body,
                         headers={"X-Broker-Signature": hmac_signature.sign(b"wrong" * 8, body)})
    assert bad.status_code == 401 and bad.json()["code"] == "invalid_signature"
    signed = hmac_signature.sign(key, body)
    ok = flow.http.post(f"/api/approvals/{rid}/decision", content=body, headers={"X-Broker-Signature": signed})
    assert ok.status_code == 200 and ok.json()["via"] == "hmac", ok.text
    replayed = flow.http.post(f"/api/approvals/{rid}/decision", content=body, headers={"X-Broker-Signature": signed})
    assert replayed.status_code == 403 and replayed.json()["code"] == "signature_replayed"
    assert flow.wait_status(rid, "done")["status"] == "done"
    assert "invalid_signature" in flow.refusals(rid) and "signature_replayed" in flow.refusals(rid)


def test_the_devhost_restarts_mid_wait_and_the_command_still_runs_once(flow):
    rid = flow.pending(touch(210))["request_id"]
    link = flow.links(rid)[ADA]
    flow.stack.kill_devhost()  # a crash while the approval waits
    with pytest.raises(httpx.HTTPError):
        flow.http.get("/api/health")
    flow.stack.start_devhost()
    assert flow.status(rid)["status"] == "pending"
    flow.decide(link)
    assert flow.wait_status(rid, "done", "failed")["status"] == "done"
    assert flow.runs(210) == 1
    flow.idle()
    assert flow.events(rid).count("execute.intent") == 1


def test_the_readme_walk_through_deletes_customer_3_after_one_approval(flow):
    """README: `exec --sql "DELETE FROM customers WHERE id = 3"` waits; an approver approves; it runs."""
    assert flow.rows("SELECT count(*) FROM customers WHERE id = 3") == [(1,)]
    orders = flow.rows("SELECT count(*) FROM orders WHERE customer_id = 3")[0][0]
    pending = flow.pending("DELETE FROM customers WHERE id = 3")
    rid = pending["request_id"]
    assert flow.decide(flow.links(rid)[ADA]).status_code == 200
    done = flow.wait_status(rid, "done", "failed")
    assert done["status"] == "done", done
    assert done["result"]["command_status"] == "DELETE 1" and done["result"]["affected_rows"] == 1
    assert flow.rows("SELECT count(*) FROM customers WHERE id = 3") == [(0,)]
    # the customer's orders stay, no longer linked to them
    assert flow.rows("SELECT count(*) FROM orders WHERE customer_id IS NULL")[0][0] >= orders


def _named(identity: str) -> dict:
    return {"tenant_id": DEV_TENANT, "object_id": IDENTITIES[identity].object_id,
            "name": IDENTITIES[identity].display_name}


def test_an_agent_holding_approver_roles_cannot_reach_a_quorum_alone(flow):
    """The issue's attack: the agent's own identity, given the approver and delegate roles too,
    names two people. Every spelling is refused; a delegate Logic App and a signed-in person can."""
    token = flow.token("devin", groups=("agents", TWO_PERSON_GROUP))
    rid = flow.pending(touch(212), token=token)["request_id"]
    url = f"/api/approvals/{rid}/decision"
    greedy = flow.token("devin", roles=["Broker.Caller", "Broker.Approver", "Broker.ApproverDelegate"])
    for who in ("approver", "approver2"):
        for named in (_named(who), {**_named(who), "object_id": _named(who)["object_id"].upper()}):
            r = flow.call("POST", url, token=greedy, json={"verdict": "approve", "approver": named})
            assert r.status_code == 403 and r.json()["code"] == "caller_cannot_approve", r.text
    # an approver naming someone else is not a delegate
    r = flow.call("POST", url, "approver", json={"verdict": "approve", "approver": _named("approver2")})
    assert r.status_code == 403 and r.json()["code"] == "delegate_role_required"
    # an app without the delegate role naming someone
    r = flow.call("POST", url, "outsider", json={"verdict": "approve", "approver": _named("approver")})
    assert r.status_code == 403 and r.json()["code"] == "delegate_role_required"
    assert flow.status(rid)["decisions"] == []
    # the Logic App (delegate role) decides for Ada; Ada's own token then counts once, not twice
    r = flow.call("POST", url, "logicapp", json={"verdict": "approve", "approver": _named("approver")})
    assert r.status_code == 200 and r.json()["via"] == "entra-app", r.text
    r = flow.call("POST", url, "approver", json={"verdict": "approve"})
    assert r.status_code == 409 and r.json()["code"] == "already_voted"
    r = flow.call("POST", url, "approver2", json={"verdict": "approve"})
    assert r.status_code == 200 and r.json()["approvals"] == 2
    done = flow.wait_status(rid, "done", "failed")
    assert done["status"] == "done" and flow.runs(212) == 1
    assert sorted(d["via"] for d in done["decisions"]) == ["entra", "entra-app"]
    decided = [s.record for s in flow.reader.by_request(rid) if s.record.event == "approval.decided"]
    assert sorted((d.outcome["via"], d.outcome["signed_in"]) for d in decided) == [("entra", True),
                                                                                   ("entra-app", False)]
    assert flow.refusals(rid).count("caller_cannot_approve") == 4


def test_a_change_measured_past_max_rows_changed_fails_before_anyone_is_asked(flow):
    """The policy lets these callers change at most two rows: a trial that changes three fails the
    request at once (no approver spends time on a change that could never run); one that changes
    two is shown with the bound, approved, and runs."""
    with flow.stack.postgres.admin("demo") as db:  # type: ignore[union-attr]
        db.execute("DELETE FROM customers WHERE name = 'e2e-bound'")
        for cid in (9201, 9202, 9203):
            db.execute("INSERT INTO customers (id, name, notes, created_at) VALUES (%s, 'e2e-bound', 'b', now())",
                       (cid,))
    token = flow.token("devin", groups=("agents", BOUNDED_GROUP))
    three = flow.execute("UPDATE customers SET notes = 'e2e-bound-3' WHERE name = 'e2e-bound'", token=token)
    assert three.status_code == 202, three.text
    rid = three.json()["request_id"]
    flow.idle()
    ended = flow.status(rid)
    assert ended["status"] == "failed" and ended["error"]["code"] == "impact_exceeded", ended
    assert "max_rows_changed" in ended["error"]["detail"], ended  # why, in words, not only the code
    assert "approval.notified" not in flow.events(rid) and "execute.preview" in flow.events(rid)
    previews = [s.record for s in flow.reader.by_request(rid) if s.record.event == "execute.preview"]
    measured = [p.outcome["impact"] for p in previews if p.outcome.get("status") == "ok"]
    assert measured and measured[0]["max_rows_changed"] == 2 and "max_rows_changed (2)" in measured[0]["exceeds"]
    assert flow.rows("SELECT count(*) FROM customers WHERE notes = 'e2e-bound-3'") == [(0,)]

    two = flow.execute("UPDATE customers SET notes = 'e2e-bound-2' WHERE id IN (9201, 9202)", token=token)
    rid = two.json()["request_id"]
    link = flow.links(rid)[ADA]
    page = flow.open(link).text
    assert "changes 2 of" in page and "the policy lets it change at most 2 row(s)" in page
    assert flow.decide(link).status_code == 200
    assert flow.wait_status(rid, "done", "failed")["status"] == "done"
    assert flow.rows("SELECT count(*) FROM customers WHERE notes = 'e2e-bound-2'") == [(2,)]


def test_an_approved_oracle_runs_with_its_derived_outputs_still_masked_whole(flow):
    """``sensitive-predicate`` (issue 13): a DBA lets the agent read ``reverse(email)``, a hash of the card
    number and the whole row as JSON; each output is still one placeholder, lineage recomputed at run time."""
    sql = "SELECT id, reverse(email), md5(card_number), to_jsonb(c)::text FROM customers c ORDER BY id LIMIT 3"
    raw = flow.rows(sql)  # read directly from the database
    pending = flow.pending(sql)
    assert pending["risk"] == "sensitive-predicate"
    flow.decide(flow.links(pending["request_id"])[ADA])
    done = flow.wait_status(pending["request_id"], "done", "failed")
    assert done["status"] == "done", done
    rows = done["result"]["rows"]
    assert [r[0] for r in rows] == [r[0] for r in raw]
    for got, want in zip(rows, raw, strict=True):
        assert got[1].startswith("[email:") and got[2].startswith("[card:") and got[3].startswith("[sensitive:")
        assert not {str(w) for w in want[1:]} & {str(g) for g in got[1:]}


def test_the_policy_decides_again_on_the_measured_rows(flow):
    """Rules with ``rows_changed_over`` hold once the trial has measured the change: one row needs
    the usual DBA; three rows (over 2) need two DBAs, shown and journaled; four (over 3) are denied
    before anyone is asked, and nothing changes."""
    with flow.stack.postgres.admin("demo") as db:  # type: ignore[union-attr]
        db.execute("DELETE FROM customers WHERE name = 'e2e-sized'")
        for cid in (9301, 9302, 9303, 9304):
            db.execute("INSERT INTO customers (id, name, notes, created_at) VALUES (%s, 'e2e-sized', 's', now())",
                       (cid,))
    token = flow.token("devin", groups=("agents", SIZED_GROUP))

    one = flow.pending("UPDATE customers SET notes = 's1' WHERE id = 9301", token=token)
    assert one["approval"]["quorum"] == 1, one
    assert flow.decide(flow.links(one["request_id"])[ADA]).status_code == 200
    assert flow.wait_status(one["request_id"], "done", "failed")["status"] == "done"

    three = flow.pending("UPDATE customers SET notes = 's3' WHERE id IN (9302, 9303, 9304)", token=token)
    rid = three["request_id"]
    assert three["approval"]["quorum"] == 1  # before the trial: the rows are not known yet
    links = flow.links(rid)
    page = flow.open(links[ADA]).text
    assert "changes 3 of" in page and "policy rule sized-writes-over-2-need-two asks 2 approval(s)" in page
    assert "1 of 2" in flow.decide(links[ADA]).text
    flow.idle()
    status = flow.status(rid, token=token)
    assert status["status"] == "pending" and status["quorum"] == 2, status
    assert flow.rows("SELECT count(*) FROM customers WHERE notes = 's3'") == [(0,)]
    notified = [s.record for s in flow.reader.by_request(rid) if s.record.event == "approval.notified"]
    assert notified[0].outcome["quorum"] == 2
    assert notified[0].outcome["policy"]["rule"] == "sized-writes-over-2-need-two"
    flow.decide(links[BO])
    assert flow.wait_status(rid, "done", "failed")["status"] == "done"
    assert flow.rows("SELECT count(*) FROM customers WHERE notes = 's3'") == [(3,)]

    four = flow.execute("UPDATE customers SET notes = 's4' WHERE name = 'e2e-sized'", token=token)
    assert four.status_code == 202, four.text
    rid = four.json()["request_id"]
    flow.idle()
    ended = flow.status(rid, token=token)
    assert ended["status"] == "failed" and ended["error"]["code"] == "policy_denied", ended
    assert "sized-writes-over-3-denied" in ended["error"]["detail"] and "4 row(s)" in ended["error"]["detail"]
    assert "Change at most three rows per request." in ended["error"]["detail"]
    assert "approval.notified" not in flow.events(rid)
    failed = [s.record for s in flow.reader.by_request(rid) if s.record.event == "approval.failed"]
    assert failed[0].outcome["policy"]["rule"] == "sized-writes-over-3-denied", failed[0].outcome
    assert flow.rows("SELECT count(*) FROM customers WHERE notes = 's4'") == [(0,)]
