"""The agent's side of a decision, end to end on the dev stack: the approver's comment and the next
step in the status and its problem, cancelling a pending request (only by its requester or an
operator, never after a decision), and resubmissions that answer with the request already open."""

from __future__ import annotations

import re
import uuid

import pytest

from devhost.smtp import read_message
from tests.approvals.e2e.conftest import Flow, touch

pytestmark = pytest.mark.e2e
ADA, BO = "ada@dev.example", "bo@dev.example"


def runtime(flow: Flow, rid: str) -> dict:
    r = flow.stack.durable_admin("GET", f"instances/{rid}")
    assert r.status_code == 200, r.text
    return r.json()


def form_of(flow: Flow, link: str) -> tuple[dict[str, str], str]:
    """The page's hidden fields and its nonce cookie, as a browser holds them before pressing a button."""
    page = flow.open(link)
    assert page.status_code == 200 and "<form" in page.text, page.text
    return (dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page.text)),
            page.headers["set-cookie"].split(";")[0])


def post_form(flow: Flow, link: str, fields: dict[str, str], cookie: str, **extra: str):
    return flow.http.post(link.split("?")[0], data={**fields, **extra},
                          headers={"Cookie": cookie, "Origin": flow.stack.base_url})


def mails_for(flow: Flow, rid: str) -> int:
    """How many approval mails ask about this request."""
    return sum(f"/api/approvals/{rid}?" in read_message(path).get_body(("plain",)).get_content()
               for path in (flow.stack.state_dir / "mail").glob("*.eml"))


def decide_as(flow: Flow, rid: str, identity: str, verdict: str, **body):
    return flow.call("POST", f"/api/approvals/{rid}/decision", identity, json={"verdict": verdict, **body})


# --- cancelling ------------------------------------------------------------------------------------
def test_the_requester_cancels_a_pending_request_the_wait_ends_and_the_links_are_dead(flow):
    pending = flow.pending(touch(160))
    rid = pending["request_id"]
    links = flow.links(rid)
    fields, cookie = form_of(flow, links[ADA])  # Ada has the page open when the agent cancels
    assert runtime(flow, rid)["runtimeStatus"] == "Running"

    r = flow.call("DELETE", f"/api/requests/{rid}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "cancelled" and body["ended_by"]["as"] == "requester"
    assert body["problem"]["code"] == "request_cancelled" and body["problem"]["status"] == 409
    assert "send the command again" in body["next_step"].lower()
    flow.idle()
    # no waiting for the 15-minute deadline: the instance completed, its timer cancelled
    instance = runtime(flow, rid)
    assert instance["runtimeStatus"] == "Completed" and instance["output"] == "cancelled", instance
    records = [s.record for s in flow.reader.by_request(rid) if s.record.event == "approval.cancelled"]
    assert len(records) == 1 and records[0].outcome["by"] == "requester"
    assert records[0].principal["object_id"] == "11111111-1111-4111-8111-111111111111"

    # every approver door is closed: the page, its form, the API
    page = flow.open(links[BO])
    assert page.status_code == 200 and "cancelled" in page.text and "<form" not in page.text
    late = post_form(flow, links[ADA], fields, cookie, verdict="approve")
    assert late.status_code == 409 and "cancelled" in late.text
    api = decide_as(flow, rid, "approver2", "approve")
    assert api.status_code == 409 and api.json()["code"] == "request_cancelled"
    assert sorted(flow.refusals(rid)) == ["request_cancelled", "request_cancelled"]
    # a second cancel is a conflict with a code, and nothing ever ran
    again = flow.call("DELETE", f"/api/requests/{rid}")
    assert again.status_code == 409 and again.json()["code"] == "already_decided"
    assert again.json()["request_status"] == "cancelled"
    flow.idle()
    assert flow.runs(160) == 0 and "execute.intent" not in flow.events(rid)


@pytest.mark.parametrize("identity", ["devin2", "approver", "approver2", "auditor", "outsider"])
def test_nobody_else_may_cancel_and_the_answer_does_not_tell_that_it_exists(flow, identity):
    rid = flow.pending(touch(161))["request_id"]
    r = flow.call("DELETE", f"/api/requests/{rid}", identity)
    nobody = str(uuid.uuid4())
    unknown = flow.call("DELETE", f"/api/requests/{nobody}", identity)
    assert r.status_code == unknown.status_code == 404, r.text
    assert r.json()["code"] == unknown.json()["code"] == "not_found"
    assert r.json()["detail"].replace(rid, "ID") == unknown.json()["detail"].replace(nobody, "ID")
    assert set(r.json()) == set(unknown.json())
    flow.idle()
    assert flow.status(rid)["status"] == "pending"
    assert "approval.cancelled" not in flow.events(rid)


def test_an_operator_may_cancel_someone_elses_request(flow):
    rid = flow.pending(touch(162))["request_id"]
    r = flow.call("DELETE", f"/api/requests/{rid}", "operator")
    assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
    assert "command" not in r.json()  # the operator sees the summary, not the command
    flow.idle()
    assert runtime(flow, rid)["runtimeStatus"] == "Completed"
    status = flow.status(rid)
    assert status["ended_by"]["as"] == "operator" and status["problem"]["code"] == "request_cancelled"


def test_a_cancel_after_the_approval_is_refused_and_the_command_ran_once(flow):
    rid = flow.pending(touch(163))["request_id"]
    flow.decide(flow.links(rid)[ADA])
    assert flow.wait_status(rid, "done", "failed")["status"] == "done"
    r = flow.call("DELETE", f"/api/requests/{rid}")
    assert r.status_code == 409 and r.json()["code"] == "already_decided" and r.json()["request_status"] == "done"
    assert flow.status(rid)["status"] == "done" and flow.runs(163) == 1
    assert "approval.cancelled" not in flow.events(rid)


# --- the approver's words ------------------------------------------------------------------------
def test_a_denial_with_a_comment_reaches_the_agent_with_a_next_step(flow):
    rid = flow.pending(touch(164))["request_id"]
    words = "Add the ticket and limit it to id 164 \u202e<script>alert(1)</script>"
    r = decide_as(flow, rid, "approver2", "deny", comment=words)
    assert r.status_code == 200, r.text
    status = flow.wait_status(rid, "denied")
    comment = status["approver_comment"]
    assert comment.startswith("Add the ticket and limit it to id 164 ")
    assert "\u202e" not in comment and "⟨U+202E RIGHT-TO-LEFT OVERRIDE⟩" in comment
    assert "<script>" in comment  # JSON carries text; nothing here renders it
    assert status["decisions"][0]["comment"] == comment
    assert "change the command as the approver asked" in status["next_step"]
    problem = status["problem"]
    assert problem["status"] == 403 and problem["code"] == "request_denied"
    assert problem["approver_comment"] == comment and problem["next_step"] == status["next_step"]
    assert problem["type"].endswith("/api/problems/request_denied")
    decided = [s.record for s in flow.reader.by_request(rid) if s.record.event == "approval.decided"]
    assert decided[0].outcome["comment"] == comment
    assert flow.runs(164) == 0


def test_a_comment_from_the_page_reaches_the_agent_and_a_long_one_is_refused_uncounted(flow):
    rid = flow.pending(touch(165))["request_id"]
    links = flow.links(rid)
    fields, cookie = form_of(flow, links[ADA])
    long = post_form(flow, links[ADA], fields, cookie, verdict="deny", comment="x" * 501)
    assert long.status_code == 400
    too_long = decide_as(flow, rid, "approver2", "deny", comment="y" * 501)
    assert too_long.status_code == 400 and too_long.json()["code"] == "invalid_request"
    not_text = decide_as(flow, rid, "approver2", "deny", comment=["a list"])
    assert not_text.status_code == 400
    flow.idle()
    assert flow.status(rid)["status"] == "pending" and flow.status(rid)["decisions"] == []

    fields, cookie = form_of(flow, links[BO])
    r = post_form(flow, links[BO], fields, cookie, verdict="deny", comment="Wrong customer: use id 1650.\r\n")
    assert r.status_code == 200, r.text
    status = flow.wait_status(rid, "denied")
    assert status["approver_comment"] == "Wrong customer: use id 1650."
    assert status["problem"]["approver_comment"] == "Wrong customer: use id 1650."


def test_the_status_says_what_to_do_while_pending(flow):
    pending = flow.pending(touch(166))
    status = flow.status(pending["request_id"])
    assert "problem" not in status and "approver_comment" not in status
    assert "DELETE" in status["next_step"] and "Retry-After" in status["next_step"]
    assert flow.call("DELETE", f"/api/requests/{pending['request_id']}").status_code == 200


# --- resubmissions -------------------------------------------------------------------------------
@pytest.mark.parametrize("spelling", ["Idempotency-Key", "idempotency-key", "IDEMPOTENCY-KEY", "iDeMpOtEnCy-KeY"])
def test_the_same_key_and_command_answer_with_the_same_request(flow, spelling):
    key = f"k-{uuid.uuid4()}"
    cid = 170 + ["Idempotency-Key", "idempotency-key", "IDEMPOTENCY-KEY", "iDeMpOtEnCy-KeY"].index(spelling)
    first = flow.execute(touch(cid), headers={"Idempotency-Key": key})
    assert first.status_code == 202, first.text
    rid = first.json()["request_id"]
    for headers, extra in (({spelling: key}, {}), ({spelling: f'"{key}"'}, {}), ({}, {"idempotency_key": key}),
                           ({spelling: key}, {"idempotency_key": key})):
        again = flow.call("POST", "/api/execute", headers=headers, json={
            "target": "demo-postgres", "sql": touch(cid), "reason": "a retry after a timeout", **extra})
        assert again.status_code == 202, again.text
        assert again.json()["request_id"] == rid and again.json()["resubmitted"] is True
        assert again.json()["status_url"] == first.json()["status_url"]
        assert again.headers["location"] == first.headers["location"]
    flow.idle()
    assert mails_for(flow, rid) == 2  # one mail per approver: one request, one workflow
    assert runtime(flow, rid)["runtimeStatus"] == "Running"
    pendings = [s.record for s in flow.reader.by_request(rid) if s.record.event == "execute.pending"]
    assert len(pendings) == 5 and sum(bool(p.outcome.get("resubmitted")) for p in pendings) == 4
    flow.call("DELETE", f"/api/requests/{rid}")


def test_a_key_reused_for_another_command_is_refused_and_opens_nothing(flow):
    key = f"k-{uuid.uuid4()}"
    rid = flow.pending(touch(175), headers={"Idempotency-Key": key})["request_id"]
    other = flow.execute(touch(176), headers={"Idempotency-Key": key})
    assert other.status_code == 409, other.text
    assert other.json()["code"] == "idempotency_key_reused" and other.json()["existing_request_id"] == rid
    flow.idle()
    assert "approval.notified" in flow.events(rid)
    assert [s.record.outcome["code"] for s in flow.reader.by_request(rid)
            if s.record.event == "execute.denied"] == []  # the refusal is journaled as the new submission
    # another caller's key of the same spelling is its own
    theirs = flow.execute(touch(177), headers={"Idempotency-Key": key}, identity="devin2")
    assert theirs.status_code == 202 and theirs.json()["request_id"] != rid and "resubmitted" not in theirs.json()
    # after the key's request is cancelled the key still names it until it expires
    flow.call("DELETE", f"/api/requests/{rid}")
    after = flow.execute(touch(175), headers={"Idempotency-Key": key})
    assert after.status_code == 202 and after.json()["request_id"] == rid and after.json()["status"] == "cancelled"
    flow.call("DELETE", f"/api/requests/{theirs.json()['request_id']}", "devin2")


@pytest.mark.parametrize("headers,extra", [
    ({"Idempotency-Key": "has space"}, {}),
    ({"Idempotency-Key": ""}, {}),
    ({"Idempotency-Key": "k" * 129}, {}),
    ({"Idempotency-Key": "caf\u00e9"}, {}),
    ({"Idempotency-Key": "one"}, {"idempotency_key": "two"}),
    ({}, {"idempotency_key": ""}),
    ({}, {"idempotency_key": 42}),
    ({}, {"idempotency_key": "tab\there"}),
])
def test_a_malformed_key_is_refused_before_anything_is_held(flow, headers, extra):
    before = flow.call("GET", "/api/requests", params={"limit": "1"}).json()["requests"]
    r = flow.http.post("/api/execute", headers={"Authorization": f"Bearer {flow.token()}",
                                                "Content-Type": "application/json", **{
                                                    k: v.encode() if not v.isascii() else v
                                                    for k, v in headers.items()}},
                       json={"target": "demo-postgres", "sql": touch(178), "reason": "x", **extra})
    assert r.status_code == 400 and r.json()["code"] == "invalid_request", r.text
    assert flow.call("GET", "/api/requests", params={"limit": "1"}).json()["requests"] == before


def test_the_same_command_sent_again_while_pending_answers_with_the_pending_request(flow):
    rid = flow.pending(touch(180))["request_id"]
    again = flow.execute(touch(180))
    assert again.status_code == 202 and again.json()["request_id"] == rid and again.json()["resubmitted"] is True
    # another reason is still the same command; another command is another request
    other_reason = flow.call("POST", "/api/execute", json={"target": "demo-postgres", "sql": touch(180),
                                                           "reason": "INC-9 once more"})
    assert other_reason.json()["request_id"] == rid
    assert flow.pending(touch(181))["request_id"] != rid
    # once it ended, the same command opens a new request
    decide_as(flow, rid, "approver", "deny", comment="not now")
    flow.wait_status(rid, "denied")
    fresh = flow.execute(touch(180))
    assert fresh.status_code == 202 and fresh.json()["request_id"] != rid and "resubmitted" not in fresh.json()
    for r in (fresh.json()["request_id"],):
        flow.call("DELETE", f"/api/requests/{r}")


def test_my_requests_are_listed_newest_first_and_only_mine(flow):
    mine = [flow.pending(touch(cid))["request_id"] for cid in (182, 183)]
    listed = flow.call("GET", "/api/requests", params={"mine": "", "limit": "5"})
    assert listed.status_code == 200, listed.text
    ids = [r["request_id"] for r in listed.json()["requests"]]
    assert ids[:2] == mine[::-1] and len(ids) <= 5
    assert all("command" not in r for r in listed.json()["requests"])
    theirs = flow.call("GET", "/api/requests", "devin2").json()["requests"]
    assert not set(mine) & {r["request_id"] for r in theirs}
    for params in ({"limit": "0"}, {"limit": "101"}, {"limit": "x"}, {"status": "pending"}):
        r = flow.call("GET", "/api/requests", params=params)
        assert r.status_code == 400 and r.json()["code"] == "invalid_request", params
    for rid in mine:
        flow.call("DELETE", f"/api/requests/{rid}")
