"""Approver resolution from an ApprovalRequirement, and the notifiers' payloads."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta

import pytest

from broker.approvals.directory import ApproverDirectory, DirectoryError
from broker.approvals.requests import ApprovalRequest
from broker.notify import ApprovalAsk
from broker.notify.acs import AcsMailer
from broker.notify.logicapp import LogicAppNotifier
from broker.notify.messages import approval_email
from broker.policy import ApprovalRequirement
from broker.problems import Unavailable
from devhost._http import Response, StandInServer
from tests.approvals.conftest import ADA, BO, CY, REQUESTER, TENANT


def test_eligible_approvers_follow_groups_and_roles_and_never_include_the_requester(tmp_path):
    directory = ApproverDirectory((ADA, BO, CY))
    dba = ApprovalRequirement(groups=("dba-approvers",))
    assert [a.name for a in directory.eligible(dba, REQUESTER)] == ["Ada Approver", "Bo Approver"]
    assert [a.name for a in directory.eligible(dba, ADA.key)] == ["Bo Approver"]
    assert not directory.is_eligible(ADA.key, dba, ADA.key)
    assert not directory.is_eligible(CY.key, dba, REQUESTER)
    assert [a.name for a in directory.eligible(ApprovalRequirement(roles=("Broker.Admin",)), REQUESTER)] == []


def test_the_approvers_file(tmp_path):
    assert ApproverDirectory.load(tmp_path / "missing.yaml").eligible(ApprovalRequirement(), REQUESTER) == []
    good = tmp_path / "approvers.yaml"
    good.write_text(f"approvers:\n  - tenant_id: {TENANT}\n    object_id: {ADA.object_id}\n    name: Ada\n"
                    "    email: ada@dev.example\n    groups: [dba-approvers]\n")
    assert ApproverDirectory.load(good).get(ADA.key).name == "Ada"
    good.write_text(good.read_text() + good.read_text().replace("approvers:\n", ""))
    with pytest.raises(DirectoryError, match="twice"):
        ApproverDirectory.load(good)
    bad = tmp_path / "bad.yaml"
    bad.write_text("approvers:\n  - name: Ada\n    email: not-an-email\n")
    with pytest.raises(DirectoryError, match=r"bad\.yaml"):
        ApproverDirectory.load(bad)


def ask(length: int = 5000, sql: str = "") -> ApprovalAsk:
    request = ApprovalRequest(
        request_id="6f1c2a4e-0000-4000-8000-000000000001", kind="command", status="pending",
        requester={"tenant_id": TENANT, "object_id": "o", "display_name": "Devin\r\nBcc: all@corp", "kind": "app"},
        target="demo-postgres", command_digest="sha256:x", requirement={"quorum": 1},
        expires_at=datetime.now(UTC) + timedelta(minutes=15), command={"language": "sql", "sql": sql or "x" * length},
        classification={"risk": "write", "statement": "DELETE"})
    return ApprovalAsk(ADA, request, "http://127.0.0.1:7071/api/approvals/6f1c2a4e?t=abc",
                       "http://127.0.0.1:7071/api/approvals/6f1c2a4e/decision")


def test_email_subject_cannot_inject_headers_and_long_commands_are_cut():
    email = approval_email(ask(20000))
    assert "\r" not in email.subject and "\n" not in email.subject
    shown = email.text.count("x")
    assert 7000 < shown < 8000  # cut, and never silently: how much more, and where to read it
    more = int(email.text.split("[… ")[1].split(" more characters")[0])
    assert shown + more >= 20000
    assert email.text.count("http://127.0.0.1:7071/api/approvals/6f1c2a4e?t=abc") == 2  # the cut says where
    assert "more characters not shown in this mail" in email.html


def test_a_command_that_fits_is_mailed_whole():
    email = approval_email(ask(5000))
    assert "x" * 5000 in email.text and "more characters" not in email.text


def test_the_mail_escapes_a_bidi_override_and_warns():
    email = approval_email(ask(sql="UPDATE customers SET notes = 'x' WHERE id = 3 /* INC-7 \u202e-- 0 < di RO */"))
    for body in (email.text, email.html):
        assert "\u202e" not in body
        assert "⟨U+202E RIGHT-TO-LEFT OVERRIDE⟩" in body and "WARNING" in body.upper()


def test_acs_message_shape():
    mailer = AcsMailer("broker@contoso.com", connection_string="endpoint=https://x.communication.azure.com/;"
                                                                "accesskey=" + "a" * 44)
    message = mailer.message(approval_email(ask()))
    assert message["senderAddress"] == "broker@contoso.com"
    assert message["recipients"] == {"to": [{"address": "ada@dev.example", "displayName": "Ada Approver"}]}
    assert set(message["content"]) == {"subject", "plainText", "html"}
    assert message["userEngagementTrackingDisabled"] is True


def test_logic_app_gets_one_post_listing_the_approvers_without_their_links():
    received: list[dict] = []
    done = threading.Event()

    def trigger(req):
        received.append(req.json())
        done.set()
        return Response(202, {})

    server = StandInServer("127.0.0.1", 0, [("POST", re.compile(r"/workflows/approve"), trigger)]).start_background()
    try:
        LogicAppNotifier(lambda: f"{server.base_url}/workflows/approve?sig=secret").ask([ask()])
        assert done.wait(5)
    finally:
        server.stop()
    body = received[0]
    assert body["decision_url"].endswith("/decision") and "link" not in body
    assert body["approvers"] == [{"tenant_id": TENANT, "object_id": ADA.object_id, "name": ADA.name,
                                  "email": ADA.email}]


def test_the_logic_app_gets_the_whole_command_escaped_with_its_warnings():
    """Its approvers read the command in the Logic App's own message and have no page with the
    rest: nothing is cut for them (a mail cuts at 8,000 characters and links to the page)."""
    long = LogicAppNotifier(lambda: "").payload([ask(20000)])
    assert long["command"].count("x") == 20000 and long["command_truncated"] is False and long["more_chars"] == 0
    hidden = LogicAppNotifier(lambda: "").payload([ask(sql="UPDATE t SET a = 1 WHERE id = 3 /* \u2066x\u2069 */")])
    assert "\u2066" not in hidden["command"] and "⟨U+2066 LEFT-TO-RIGHT ISOLATE⟩" in hidden["command"]
    assert any("U+2069 POP DIRECTIONAL ISOLATE" in w for w in hidden["warnings"])


def test_logic_app_failure_is_unavailable():
    with pytest.raises(Unavailable):
        LogicAppNotifier(lambda: "http://127.0.0.1:9/nothing", timeout=1).ask([ask()])
