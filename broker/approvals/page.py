"""The approval page: HTML rendered with Jinja2 autoescaping, no script, and a strict CSP.

Everything shown is escaped: the command is written by an agent that may be prompt-injected,
so ``<script>`` in a SQL comment must arrive as text. The only inline style carries a per-
response CSP nonce; the only form posts back to the same origin; the page cannot be framed
and sends no Referer (its URL holds the link token).
"""

from __future__ import annotations

import secrets
from functools import lru_cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from broker.approvals import shown
from broker.approvals.decisions import Accepted, PageView
from broker.problems import BrokerError

NONCE_COOKIE = "broker_approval_nonce"


@lru_cache(maxsize=1)
def _env() -> Environment:
    return Environment(loader=PackageLoader("broker.approvals", "templates"), autoescape=True,
                       undefined=StrictUndefined)


def security_headers(style_nonce: str) -> dict[str, str]:
    csp = (f"default-src 'none'; style-src 'nonce-{style_nonce}'; form-action 'self'; "
           "frame-ancestors 'none'; base-uri 'none'; img-src 'none'; script-src 'none'")
    return {"Content-Security-Policy": csp, "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
            "Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Resource-Policy": "same-origin"}


def nonce_cookie(request_id: str, value: str, max_age: int, secure: bool) -> str:
    """The form nonce again as a cookie (double submit): a cross-site POST cannot carry it."""
    attrs = [f"{NONCE_COOKIE}={value}", f"Path=/api/approvals/{request_id}", f"Max-Age={max_age}",
             "HttpOnly", "SameSite=Strict"]
    if secure:
        attrs.append("Secure")
    return "; ".join(attrs)


def _left(seconds: int) -> str:
    minutes, secs = divmod(max(0, seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def render(template: str, **values: Any) -> tuple[str, dict[str, str]]:
    style_nonce = secrets.token_urlsafe(16)
    html = _env().get_template(template).render(style_nonce=style_nonce, **values)
    return html, security_headers(style_nonce)


def page(view: PageView, action: str, token: str) -> tuple[str, dict[str, str]]:
    r = view.request
    return render("page.html.j2", view=view, r=r, action=action, token=token, approver=view.claims.approver_name,
                  requester=shown.text(r.requester.get("display_name") or r.requester_key),
                  requester_id=r.requester_key,
                  reason=shown.text(r.reason), ticket=shown.text(r.ticket),
                  requester_kind=r.requester.get("kind", ""), parts=(blocks := shown.parts(r.command, r.preview)),
                  warnings=shown.warnings(blocks), impact=shown.impact(r.preview),
                  time_left=_left(view.seconds_left), expires=r.expires_at.strftime("%Y-%m-%d %H:%M:%S UTC"))


def outcome(accepted: Accepted, approvals: int) -> tuple[str, dict[str, str]]:
    r = accepted.request
    return render("outcome.html.j2", a=accepted, r=r, approvals=approvals, quorum=r.quorum)


def refusal(error: BrokerError) -> tuple[str, dict[str, str]]:
    return render("refusal.html.j2", error=error)
