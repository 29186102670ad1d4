"""The approval page and emails render attacker-controlled text as text, under a strict CSP."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from broker.approvals import page
from broker.approvals.decisions import Accepted, PageView
from broker.approvals.requests import ApprovalRequest
from broker.approvals.tokens import LinkClaims
from broker.problems import Gone

INJECTED = ("DELETE FROM customers WHERE id = 3 -- </pre><script>alert('x')</script>"
            "<img src=x onerror=alert(1)><form action=https://evil.example>")


def request(**overrides: object) -> ApprovalRequest:
    values = dict(
        request_id="6f1c2a4e-0000-4000-8000-000000000001", kind="command", status="pending",
        requester={"tenant_id": "t", "object_id": "o", "display_name": "<b>Devin</b>", "kind": "app"},
        target="demo-postgres", command_digest="sha256:" + "ab" * 32,
        requirement={"quorum": 2, "groups": ["dba-approvers"]},
        expires_at=datetime.now(UTC) + timedelta(minutes=10), command={"language": "sql", "sql": INJECTED},
        classification={"risk": "write", "reason": "DELETE changes rows", "statement": "DELETE"},
        reason="<i>urgent</i> \" onmouseover=alert(1)", ticket="INC-1")
    values.update(overrides)
    return ApprovalRequest(**values)  # type: ignore[arg-type]


def view(state: str = "open", r: ApprovalRequest | None = None) -> PageView:
    r = r or request()
    claims = LinkClaims(r.request_id, "t/ada", "Ada <Approver>", r.command_digest, r.expires_at, "jti-1")
    return PageView(r, claims, state, 1, "123.salt.mac" if state == "open" else "", 754)  # type: ignore[arg-type]


def test_everything_shown_is_escaped():
    html, _ = page.page(view(), "/api/approvals/6f1c2a4e-0000-4000-8000-000000000001", 'tok"en<')
    assert "<script>" not in html and "<img" not in html and "evil.example>" not in html
    assert "&lt;/pre&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert "&lt;b&gt;Devin&lt;/b&gt;" in html and "Ada &lt;Approver&gt;" in html
    assert "&lt;i&gt;urgent&lt;/i&gt; &#34; onmouseover=alert(1)" in html
    assert 'value="tok&#34;en&lt;"' in html
    # exactly one form, posting to the same origin
    assert re.findall(r"<form [^>]*>", html) == ['<form method="post" action="/api/approvals/'
                                                 '6f1c2a4e-0000-4000-8000-000000000001">']
    for shown in ("demo-postgres", "write", "DELETE changes rows", "1 of 2 needed", "12 min 34 s", "INC-1"):
        assert shown in html


def test_hidden_characters_outside_the_command_are_escaped_too():
    """The agent's reason and ticket, its display name, sampled values and table names are text from
    others as well: none of their bidi or invisible characters renders (mail and Logic App alike)."""
    from broker.notify.base import ApprovalAsk
    from broker.notify.messages import approval_email
    from tests.approvals.test_directory_and_notify import ADA

    sample = {"measured": True, "statement_rows": 1, "changed": 1, "notes": [], "reason": "",
              "tables": [{"table": "public.cust\u200bomers", "inserted": 0, "updated": 1, "deleted": 0,
                          "changed": 1, "total": 9, "total_exact": True}],
              "sample": {"columns": ["na\u2066me"], "rows": [["Ada \u202e gnp.exe"]], "of": 1}}
    r = request(command={"language": "sql", "sql": "UPDATE customers SET notes = 'x' WHERE id = 3"},
                reason="routine \u202e0 < di RO", ticket="INC\u00ad-1",
                requester={"tenant_id": "t", "object_id": "o", "display_name": "Dev\u200bin", "kind": "app"},
                preview={"impact": sample})
    html, _ = page.page(view(r=r), "/api/approvals/x", "tok")
    email = approval_email(ApprovalAsk(ADA, r, "http://127.0.0.1/l", "http://127.0.0.1/d"))
    for body in (html, email.text, email.html):
        for ch in ("\u202e", "\u200b", "\u2066", "\u00ad"):
            assert ch not in body
        assert "⟨U+202E RIGHT-TO-LEFT OVERRIDE⟩" in body and "⟨U+200B ZERO WIDTH SPACE⟩" in body
        assert "⟨U+00AD SOFT HYPHEN⟩" in body
    assert "⟨U+2066 LEFT-TO-RIGHT ISOLATE⟩" in html  # the sample's column (the mail has no sample)


def test_thousands_of_hidden_characters_are_counted_not_listed():
    from broker.approvals import shown

    blocks = shown.parts({"language": "sql", "sql": "UPDATE t SET a = 1 WHERE id = 3 /*" + "\u200b" * 5000 + "*/"})
    listed = shown.warnings(blocks)
    assert len(listed) == shown.WARNINGS_LISTED + 1 and listed[-1].startswith("… and 4950 more")
    assert blocks[0].plain().count("⟨U+200B ZERO WIDTH SPACE⟩") == 5000


def test_strict_content_security_policy():
    html, headers = page.page(view(), "/a", "t")
    csp = headers["Content-Security-Policy"]
    nonce = re.search(r"'nonce-([^']+)'", csp).group(1)
    assert f'<style nonce="{nonce}">' in html
    assert "default-src 'none'" in csp and "script-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "form-action 'self'" in csp and "base-uri 'none'" in csp
    assert headers["Referrer-Policy"] == "no-referrer" and headers["X-Frame-Options"] == "DENY"
    assert headers["Cache-Control"] == "no-store"
    assert "<script" not in html
    assert page.page(view(), "/a", "t")[1]["Content-Security-Policy"] != csp  # a fresh nonce per response


def test_no_buttons_unless_the_link_can_still_decide():
    for state, text in [("used", "used already"), ("voted", "already decided"), ("ended", "no longer takes")]:
        html, _ = page.page(view(state), "/a", "t")
        assert "<form" not in html and text in html


def test_grant_requests_show_the_access_asked_for():
    r = request(kind="grant", command={"grant": {}}, grant={"level": "write", "duration": "PT30M"})
    html, _ = page.page(view(r=r), "/a", "t")
    assert "write for PT30M" in html and "<pre" not in html


def test_outcome_and_refusal_pages():
    r = request()
    html, _ = page.outcome(Accepted(r, "t/ada", "Ada", "approve", "link"), 1)
    assert "1 of 2 needed" in html
    html, _ = page.outcome(Accepted(r, "t/ada", "Ada", "deny", "link"), 0)
    assert "nothing runs" in html
    html, headers = page.refusal(Gone("This request has <expired>.", code="expired"))
    assert "&lt;expired&gt;" in html and "expired" in html and "Content-Security-Policy" in headers


def test_nonce_cookie_is_scoped_and_strict():
    cookie = page.nonce_cookie("rid", "n", 600, secure=True)
    assert cookie == ("broker_approval_nonce=n; Path=/api/approvals/rid; Max-Age=600; HttpOnly; SameSite=Strict; "
                      "Secure")
