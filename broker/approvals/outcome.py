"""What the requester reads about how a request ended: the approver's own words, the next step,
and, for a request that ended without running, the problem an agent branches on.

An approver's comment is written by a person or by an automation and reaches an agent (an LLM):
it is text to show, never an instruction. It is kept short (``MAX_COMMENT``), its hidden
characters (bidi controls, zero-width and other format or control characters) arrive escaped as
``⟨U+202E RIGHT-TO-LEFT OVERRIDE⟩``, and it travels in its own field (``approver_comment``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from broker.approvals.requests import ApprovalRequest, DecisionRow
from broker.guard.hidden import escaped, is_hidden
from broker.problem_codes import CODES
from broker.problems import BadRequest, BrokerError, CommandFailed, Conflict, Forbidden, Gone

MAX_COMMENT = 500
"""Characters an approver's comment may have (before escaping)."""

NEXT_STEPS = {
    "pending": "Wait: poll status_url (honour Retry-After), or cancel it with DELETE on status_url.",
    "approved": "Wait: it was approved and runs once; poll status_url for the result.",
    "running": "Wait: it runs now; poll status_url for the result.",
    "done": "Nothing to do: it ran once and the masked result is in `result`.",
    "denied": "Nothing ran. Read approver_comment, change the command as the approver asked and send it "
              "again (a new request), or ask for a grant (POST /api/grants) if you need this access.",
    "expired": "Nothing ran: nobody decided in time. Send the command again to ask again.",
    "cancelled": "Nothing ran: the request was cancelled. Send the command again if you still need it.",
    "failed": "Nothing more runs for this request; `error` says why. Fix the cause and send the command again.",
}
INTERRUPTED_STEP = ("It may have run: the broker stopped while the command was running, and it is not repeated. "
                    "Check the target (read what the command would change) before sending it again.")
"""``failed`` with code ``interrupted``: sending the command again blindly could run a write twice."""


def next_step(r: ApprovalRequest) -> str:
    """What the agent should do now; an interrupted run is not a failure it may simply retry."""
    if r.status == "failed" and r.error.get("code") == "interrupted":
        return INTERRUPTED_STEP
    return NEXT_STEPS.get(r.status, "")


def clean_comment(text: str) -> str:
    """The comment as stored and shown: at most ``MAX_COMMENT`` characters, hidden ones escaped."""
    if len(text) > MAX_COMMENT:
        raise BadRequest(f"The comment has {len(text)} characters; at most {MAX_COMMENT} are kept.",
                         code="invalid_request")
    return "".join(escaped(c) if is_hidden(c) or c in "\t\r" else c for c in text.strip())


def claim_index(kind: str, *parts: str) -> str:
    """The partition of a claim: hashed, so keys the caller chose never become table keys."""
    return "index_" + hashlib.sha256("\x1f".join((kind, *parts)).encode()).hexdigest()[:48]


def outcome_for(r: ApprovalRequest, decisions: Sequence[DecisionRow]) -> dict[str, Any]:
    """``next_step`` always; ``approver_comment`` when the decisive approver wrote one; ``problem``
    when the request ended without running (the same problem the MCP tools return as an error)."""
    body: dict[str, Any] = {"next_step": next_step(r) or "Read status_url."}
    comment = _decisive_comment(r, decisions)
    if comment:
        body["approver_comment"] = comment
    error = ended_problem(r, comment)
    if error is not None:
        body["problem"] = error.to_problem()
    return body


def ended_problem(r: ApprovalRequest, comment: str) -> BrokerError | None:
    extra: dict[str, Any] = {"request_id": r.request_id, "request_status": r.status,
                             "next_step": next_step(r)}
    if comment:
        extra["approver_comment"] = comment
    if r.status == "denied":
        who = str(r.ended_by.get("name") or "an approver")
        return Forbidden(f"{who} denied request {r.request_id}; nothing ran.", code="request_denied",
                         remedy=extra["next_step"], extra=extra)
    if r.status == "expired":
        return Gone(f"Nobody decided request {r.request_id} in time; nothing ran.", code="expired",
                    remedy=extra["next_step"], extra=extra)
    if r.status == "cancelled":
        return Conflict(f"Request {r.request_id} was cancelled; nothing ran.", code="request_cancelled",
                        remedy=extra["next_step"], extra=extra)
    if r.status == "failed":
        return failed_problem(r.request_id, failure_of(r), extra)
    return None


def failed_problem(request_id: str, error: dict[str, Any], extra: dict[str, Any]) -> BrokerError:
    """422 ``request_failed``: a command whose dry run or approved run failed, or a grant that could
    not be opened; ``error`` says why and ``next_step`` what to do."""
    return CommandFailed(f"Request {request_id} failed ({error.get('code', 'unknown')}): "
                         f"{error.get('detail', 'see error')}", code="request_failed",
                         remedy=extra.get("next_step") or None, extra={**extra, "error": error})


def failure_of(r: ApprovalRequest) -> dict[str, Any]:
    """Why a request failed, with a sentence an agent can act on. A failed dry run (``preview_failed``)
    names the refusal's code and the catalogue's words for it, not the target's message: the dry
    run's message is kept with the request unmasked, so it is not sent to the requester."""
    error = dict(r.error)
    if error.get("code") == "preview_failed" and "detail" not in error:
        cause = str(r.preview.get("code") or "")
        entry = CODES.get(cause)
        error["cause"] = cause or "unknown"
        error["detail"] = ("The dry run prepared for the approvers failed" +
                           (f" with {cause}: {entry.meaning} {entry.action}" if entry else "") +
                           " Nobody was asked; nothing ran.")
    policy = r.preview.get("policy") or {}
    if error.get("code") == "policy_denied" and "detail" not in error and policy.get("effect") == "deny":
        changed = (r.preview.get("impact") or {}).get("changed")
        error["detail"] = (f"Measured in a rolled-back trial, the change touches {changed} row(s); policy rule "
                           f"{policy.get('rule')} denies that: {policy.get('reason')}. "
                           f"{policy.get('remedy') or ''} Nobody was asked; nothing ran.").replace("  ", " ")
    entry = CODES.get(str(error.get("code", "")))
    if "detail" not in error and entry is not None:  # e.g. impact_exceeded, no_approvers: the catalogue's words
        error["detail"] = f"{entry.meaning} {entry.action}"
    return error


def _decisive_comment(r: ApprovalRequest, decisions: Sequence[DecisionRow]) -> str:
    """The denier's comment for a denial; otherwise the newest comment any approver left."""
    if r.status == "denied":
        denier = str(r.ended_by.get("approver", ""))
        for d in decisions:
            if d.verdict == "deny" and (not denier or d.approver == denier) and d.comment:
                return d.comment
    for d in reversed(decisions):
        if d.comment:
            return d.comment
    return ""
