"""Approval email bodies: plain text and HTML from Jinja2 templates (HTML autoescaped: the
command, the reason and even names are written by others and may carry markup)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from broker.approvals import shown
from broker.notify.base import ApprovalAsk, Email

EMAIL_COMMAND_CHARS = 8000
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


@lru_cache(maxsize=1)
def _env() -> Environment:
    return Environment(loader=PackageLoader("broker.notify", "templates"),
                       autoescape=select_autoescape(["html.j2"], default_for_string=True, default=False),
                       undefined=StrictUndefined, keep_trailing_newline=True)


def one_line(text: str, limit: int) -> str:
    """For headers and summaries: no control characters (no header injection), bounded length."""
    text = _CONTROL.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def summary(ask: ApprovalAsk) -> dict[str, object]:
    r = ask.request
    blocks = shown.parts(r.command, r.preview) if r.kind == "command" else []
    command, more = _bounded(whole_command(blocks), EMAIL_COMMAND_CHARS)
    now = datetime.now(UTC)
    minutes = max(0, int((r.expires_at - now).total_seconds() // 60))
    what = (f"{r.grant.get('level', '?')} access to {r.target} for {r.grant.get('duration', '')}"
            if r.kind == "grant" else f"{r.classification.get('statement') or 'a command'} on {r.target}")
    return {
        "approver": ask.approver.name, "requester": shown.text(r.requester.get("display_name") or r.requester_key),
        "requester_id": r.requester_key, "requester_kind": r.requester.get("kind", ""), "target": r.target,
        "kind": r.kind, "what": what, "risk": r.classification.get("risk", ""),
        "risk_reason": r.classification.get("reason", ""), "reason": shown.text(r.reason),
        "ticket": shown.text(r.ticket),
        "command": command, "command_truncated": more > 0, "more_chars": more,
        "warnings": shown.warnings(blocks), "impact": (found.lines if (found := shown.impact(r.preview)) else []),
        "quorum": r.quorum, "expires_at": r.expires_at.strftime("%Y-%m-%d %H:%M UTC"), "minutes_left": minutes,
        "link": ask.link, "request_id": r.request_id,
    }


def whole_command(blocks: list[shown.Part]) -> str:
    """Every block approvers read, hidden characters escaped, uncut (the Logic App gets all of it)."""
    return "\n\n".join(f"[{b.title}]\n{b.plain()}" for b in blocks)


def _bounded(text: str, limit: int) -> tuple[str, int]:
    """The first ``limit`` characters and how many more there are (the mail says so; never silent)."""
    return (text, 0) if len(text) <= limit else (text[:limit], len(text) - limit)


def approval_email(ask: ApprovalAsk, *, product: str = "Agent access broker") -> Email:
    values = {**summary(ask), "product": product}
    subject = one_line(f"Approval needed: {values['what']} requested by {values['requester']}", 150)
    return Email(to=ask.approver.email, to_name=one_line(ask.approver.name, 100), subject=subject,
                 text=_env().get_template("approval.txt.j2").render(**values),
                 html=_env().get_template("approval.html.j2").render(**values))
