"""The approval service on real storage and a real SMTP sink: holding, asking, concluding,
running once, and who may read the result."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest

from broker.approvals import ApprovalService, principal_from_record
from broker.approvals.outcome import outcome_for
from broker.identity import Principal
from broker.notify.email import EmailNotifier
from broker.notify.smtp import SmtpMailer
from broker.problems import BrokerError, CommandFailed
from devhost.smtp import MailSink, read_message
from tests.approvals.conftest import ADA, BO, REQUESTER, TENANT, held_request


def refused(fn, *args) -> tuple[int, str]:
    with pytest.raises(BrokerError) as caught:
        fn(*args)
    return caught.value.status, caught.value.code


def test_nobody_to_approve_is_refused_up_front_and_journaled(parts):
    with pytest.raises(BrokerError) as caught:
        held_request(parts, groups=("nobody-here",))
    assert (caught.value.status, caught.value.code) == (403, "no_approvers")
    with pytest.raises(BrokerError) as caught:
        held_request(parts, quorum=3)  # only Ada and Bo are dba-approvers
    assert caught.value.code == "no_approvers"


def test_notify_fails_when_the_requirement_outgrew_the_approvers(parts):
    """The requirement can change after the request was opened (the policy, asked again on the
    measured rows, wants a larger quorum): notify then asks nobody and says why, instead of mailing
    two people for a quorum of three that could only expire."""
    request = held_request(parts)
    raised = {**request.requirement, "quorum": 3}  # only Ada and Bo are dba-approvers
    parts.store.transition(request.request_id, {"pending"}, "pending", requirement=raised)
    notified = parts.service.notify(request.request_id)
    assert notified == {"sent": 0, "status": "failed", "error": "no_approvers", "approvers": []}
    assert "approval.notified" not in [event for event, _, _ in parts.events(request.request_id)]


def test_held_request_is_pending_and_journaled(parts):
    request = held_request(parts)
    stored = parts.store.get(request.request_id)
    assert stored.status == "pending" and stored.command_digest == request.command_digest
    assert stored.command == {"language": "sql", "sql": "DELETE FROM customers WHERE id = 3"}
    assert parts.events(request.request_id) == [("execute.pending", "pending", "")]


def test_notify_mails_each_approver_their_own_link(parts, tmp_path):
    sink = MailSink(tmp_path / "mail").start()
    try:
        service = ApprovalService(store=parts.store, directory=parts.directory, tokens=parts.tokens,
                                  journal=parts.journal, public_base_url="http://127.0.0.1:7071",
                                  notifier=EmailNotifier(SmtpMailer("127.0.0.1", sink.port, "broker@dev.example")))
        request = held_request(parts, sql="DELETE FROM customers WHERE id = 3 -- <script>alert(1)</script>")
        notified = service.notify(request.request_id)
        assert notified["sent"] == 2 and sorted(notified["approvers"]) == sorted([ADA.key, BO.key])
        mails = [read_message(p) for p in sink.messages()]
    finally:
        sink.stop()
    assert sorted(m["To"] for m in mails) == ["Ada Approver <ada@dev.example>", "Bo Approver <bo@dev.example>"]
    links = []
    for mail in mails:
        text = mail.get_body(("plain",)).get_content()
        html = mail.get_body(("html",)).get_content()
        assert mail["Subject"].strip() == "Approval needed: DELETE on demo-postgres requested by Devin (dev agent)"
        assert "<script>alert(1)</script>" in text  # plain text shows it as text
        assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        found = re.findall(r"http://127\.0\.0\.1:7071/api/approvals/[0-9a-f-]{36}\?t=[\w.-]+", text)
        assert len(found) == 1 and found[0] in html
        links.append(found[0])
    claims = [parts.tokens.verify(u.split("?t=")[1], request.request_id) for u in links]
    assert sorted(c.approver for c in claims) == sorted([ADA.key, BO.key])
    assert REQUESTER not in [c.approver for c in claims]
    assert ("approval.notified", "sent", "") in parts.events(request.request_id)


def test_conclude_is_recorded_once(parts):
    request = held_request(parts)
    outcome = {"status": "approved", "approvals": [{"approver": ADA.key, "name": ADA.name, "via": "link"}]}
    assert parts.service.conclude(request.request_id, outcome) == {"status": "approved"}
    assert parts.service.conclude(request.request_id, outcome) == {"status": "approved"}  # re-delivered
    stored = parts.store.get(request.request_id)
    assert stored.status == "approved" and stored.approved_by == outcome["approvals"]
    assert [e for e, _, _ in parts.events(request.request_id)].count("approval.approved") == 1


@pytest.mark.parametrize("status", ["denied", "expired"])
def test_denied_and_expired_end_the_request(parts, status):
    request = held_request(parts)
    parts.service.conclude(request.request_id, {"status": status, "approvals": []})
    assert parts.store.get(request.request_id).status == status
    assert (f"approval.{status}", status, "") in parts.events(request.request_id)


@dataclass
class RecordingRunner:
    """Stands in for ExecuteService.run_approved (the real one runs in the end-to-end suite)."""

    calls: int = 0
    fail: Exception | None = None
    rows: int = 1

    def run_approved(self, requester: Principal, target: str, command: Any, digest: str, request_id: str,
                     approvals: list, reason: str, ticket: str = "", impact: dict | None = None) -> Any:
        self.calls += 1
        self.impact = impact
        assert command.digest == digest
        if self.fail:
            raise self.fail
        rows = [[i, f"row {i}"] for i in range(self.rows)]

        class Result:
            record_id = "rec-1"

            def to_dict(self) -> dict:
                return {"status": "done", "columns": [{"name": "id"}, {"name": "v"}], "rows": rows,
                        "affected_rows": 1}

        return Result()


def approved(parts, **kwargs):
    request = held_request(parts, **kwargs)
    parts.service.conclude(request.request_id, {"status": "approved", "approvals": [{"approver": ADA.key}]})
    return request


def test_approved_command_runs_exactly_once(parts):
    request = approved(parts)
    runner = RecordingRunner()
    assert parts.service.run(request.request_id, runner)["status"] == "done"
    assert parts.service.run(request.request_id, runner) == {"status": "done"}  # re-delivered activity
    assert runner.calls == 1
    me = principal_from_record(request.requester)
    status = parts.service.status(request.request_id, me)
    assert status["status"] == "done" and status["result"]["affected_rows"] == 1


def test_a_run_interrupted_midway_is_never_repeated(parts):
    request = approved(parts)
    parts.store.transition(request.request_id, {"approved"}, "running")  # a worker died here
    runner = RecordingRunner()
    assert parts.service.run(request.request_id, runner) == {"status": "failed", "code": "interrupted"}
    assert runner.calls == 0
    assert parts.store.get(request.request_id).error["code"] == "interrupted"
    assert ("approval.failed", "failed", "interrupted") in parts.events(request.request_id)
    # it may have run: the agent is told to check before sending it again, never just to resend
    ended = parts.store.get(request.request_id)
    step = outcome_for(ended, [])["next_step"]
    assert "may have run" in step and "Check the target" in step
    assert parts.service.summary(ended)["next_step"] == step
    assert "may or may not have run" in ended.error["detail"]


def test_a_refused_command_ends_failed_with_its_error(parts):
    request = approved(parts)
    runner = RecordingRunner(fail=CommandFailed("relation does not exist", code="query_failed"))
    assert parts.service.run(request.request_id, runner) == {"status": "failed", "code": "query_failed"}
    assert parts.store.get(request.request_id).error["code"] == "query_failed"


def test_an_unexpected_error_still_ends_the_request_failed(parts):
    request = approved(parts)
    runner = RecordingRunner(fail=ConnectionResetError("peer went away"))
    assert parts.service.run(request.request_id, runner) == {"status": "failed", "code": "run_failed"}
    assert parts.store.get(request.request_id).status == "failed"
    assert ("approval.failed", "failed", "run_failed") in parts.events(request.request_id)
    assert parts.service.run(request.request_id, runner) == {"status": "failed"}  # asked again: not rerun
    assert runner.calls == 1


def test_a_request_that_is_not_approved_never_runs(parts):
    request = held_request(parts)
    runner = RecordingRunner()
    assert parts.service.run(request.request_id, runner) == {"status": "pending"}
    assert runner.calls == 0


def test_large_results_go_to_a_blob(azure_parts):
    parts = azure_parts  # the adapter's own: a Table row holds at most 8 chunks
    request = approved(parts)
    parts.service.run(request.request_id, RecordingRunner(rows=30_000))
    entity = parts.store._table.get_entity(request.request_id, "result")
    assert entity.get("blob")
    result = parts.store.load_result(request.request_id)
    assert len(result["rows"]) == 30_000


def test_only_the_requester_or_an_auditor_sees_a_request(parts):
    request = held_request(parts)
    me = principal_from_record(request.requester)
    assert parts.service.status(request.request_id, me)["status"] == "pending"
    approver = Principal(TENANT, ADA.object_id, display_name="Ada", roles=frozenset({"Broker.Approver"}))
    same_name = Principal("another-tenant", request.requester["object_id"], display_name="Devin (dev agent)")
    auditor = Principal(TENANT, "44444444-4444-4444-8444-444444444444", roles=frozenset({"Broker.Auditor"}))
    assert refused(parts.service.status, request.request_id, approver) == (403, "not_requester")
    assert refused(parts.service.status, request.request_id, same_name) == (403, "not_requester")
    assert parts.service.status(request.request_id, auditor)["request_id"] == request.request_id
    assert refused(parts.service.status, "no-such-request", me) == (404, "not_found")


def test_status_shows_who_decided_and_time_left(parts):
    from tests.approvals.conftest import CTX, form_for, link

    request = held_request(parts, quorum=2)
    form, cookie = form_for(parts, request, link(parts, request))
    parts.desk.decide_by_link(request.request_id, form, cookie, CTX)
    status = parts.service.status(request.request_id, principal_from_record(request.requester))
    assert [(d["approver"], d["verdict"], d["via"]) for d in status["decisions"]] == [("Ada Approver", "approve",
                                                                                       "link")]
    assert 0 < status["seconds_left"] <= 900
    assert status["quorum"] == 2 and status["status_url"].endswith(f"/api/requests/{request.request_id}")


def test_abandon_when_the_workflow_cannot_start(parts):
    request = held_request(parts)
    parts.service.abandon(request.request_id, BrokerError("down", code="workflow_unavailable"))
    assert parts.store.get(request.request_id).status == "failed"
    assert ("approval.failed", "failed", "workflow_unavailable") in parts.events(request.request_id)


def test_astral_commands_and_results_fit_the_approval_rows(azure_parts):
    """Approval rows are chunked by UTF-16 code units (Azurite refuses a property beyond 32,768, as
    Azure does): 30,000 emoji are 60,000 units, which character-counted chunks overflowed."""
    parts = azure_parts
    sql = "SELECT '" + "😀" * 30_000 + "'"
    request = held_request(parts, sql=sql)
    assert parts.store.get(request.request_id).command["sql"] == sql
    result = {"rows": [["🚀" * 40_000]], "row_count": 1}
    assert parts.store.store_result(request.request_id, result) == "inline"
    assert parts.store.load_result(request.request_id) == result
