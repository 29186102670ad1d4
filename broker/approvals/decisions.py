"""Taking decisions: verify who decides, on what, and that it still counts; refuse and journal
everything else.

Two doors lead here. The approval page (a link token plus the page's CSRF nonce) and the
automation endpoint (an Entra token or an HMAC-signed body, for a Logic App). Both end in
``_accept``: the same checks in the same order, so neither door is weaker than the other.

    the link's signature, expiry, request id        -> 403 token_invalid / 410 token_expired / 403 token_wrong_request
    the exact command (digest)                      -> 403 token_command_mismatch
    the requester deciding on their own request     -> 403 self_approval (object id or app id, any spelling)
    an agent identity (Broker.Caller) deciding      -> 403 caller_cannot_approve
    deciding for a named person without the role    -> 403 delegate_role_required
    not an approver for this requirement            -> 403 not_an_approver
    an approval the policy wants signed in          -> 403 sign_in_required
    the link used before                            -> 409 token_used
    the comment longer than 500 characters          -> 400 invalid_request
    the request no longer pending                   -> 410 expired / 409 request_cancelled / 409 already_decided
    this approver decided already                   -> 409 already_voted
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from broker.approvals.directory import ApproverDirectory
from broker.approvals.independence import (
    DELEGATE_ROLE,
    SIGNED_IN_CHANNELS,
    Actor,
    check_actor,
    normal_key,
    same_identity,
)
from broker.approvals.outcome import clean_comment
from broker.approvals.ports import JournalSink, RequestRecords
from broker.approvals.requests import ApprovalRequest, DecisionRow
from broker.approvals.tokens import ApprovalTokens, LinkClaims
from broker.execute import CallContext
from broker.journal import Event
from broker.journal import events as journaled
from broker.journal.events import Subject
from broker.policy import ApprovalRequirement
from broker.problems import BadRequest, BrokerError, Conflict, Forbidden, Gone

Verdict = Literal["approve", "deny"]
PageState = Literal["open", "used", "voted", "ended"]


@dataclass(frozen=True)
class Accepted:
    """A decision that passed every check and is recorded; the orchestrator gets ``event()``."""

    request: ApprovalRequest
    approver: str
    name: str
    verdict: Verdict
    via: str
    token_id: str | None = None
    actor: Actor | None = None

    def event(self) -> dict[str, Any]:
        return {"approver": self.approver, "name": self.name, "verdict": self.verdict, "via": self.via}


@dataclass(frozen=True)
class PageView:
    """What the approval page shows one approver (no decision taken)."""

    request: ApprovalRequest
    claims: LinkClaims
    state: PageState
    decisions: int
    nonce: str = ""
    seconds_left: int = 0
    approve_here: bool = True  # False when the policy wants approvals from people who signed in


class DecisionDesk:
    def __init__(self, *, store: RequestRecords, directory: ApproverDirectory, tokens: ApprovalTokens,
                 journal: JournalSink, clock: Callable[[], float] = time.time,
                 delegate_role: str = DELEGATE_ROLE) -> None:
        self._store = store
        self._delegate_role = delegate_role
        self._directory = directory
        self._tokens = tokens
        self._journal = journal
        self._clock = clock

    # --- the page (GET): shows, never decides ---
    def view(self, request_id: str, token: str, ctx: CallContext) -> PageView:
        claims = self._verify(request_id, token, ctx, via="page")
        request = self._checked(request_id, normal_key(claims.approver), claims.approver_name, claims, ctx,
                                via="page")
        decisions = self._store.decisions(request_id)
        seconds_left = max(0, int(request.expires_at.timestamp() - self._clock()))
        if request.status != "pending" or seconds_left == 0:
            state: PageState = "ended"
        elif self._store.token_used(request_id, claims.token_id):
            state = "used"
        elif any(d.approver == claims.approver for d in decisions):
            state = "voted"
        else:
            state = "open"
        nonce = self._tokens.form_nonce(claims) if state == "open" else ""
        signed_in = bool(request.requirement.get("require_sign_in"))
        return PageView(request, claims, state, sum(d.verdict == "approve" for d in decisions), nonce, seconds_left,
                        approve_here=not signed_in)

    # --- the page's form (POST) ---
    def decide_by_link(self, request_id: str, form: dict[str, str], cookie_nonce: str, ctx: CallContext) -> Accepted:
        claims = self._verify(request_id, form.get("t", ""), ctx, via="link")
        try:
            verdict = _verdict(form.get("verdict", ""))
            self._tokens.check_nonce(claims, form.get("nonce", ""), cookie_nonce)
            comment = clean_comment(form.get("comment", ""))
        except BrokerError as refusal:
            self._refuse(refusal, request_id, claims.approver, claims.approver_name, ctx, via="link")
        return self._accept(request_id, claims.approver, claims.approver_name, verdict, "link", ctx, claims,
                            comment=comment)

    # --- the API door: a person's own Entra token, a delegate app, or a signed body ---
    def decide_by_automation(self, request_id: str, approver: str, name: str, verdict: str, via: str,
                             ctx: CallContext, actor: Actor | None = None, comment: str = "") -> Accepted:
        """``actor`` is the authenticated caller (Entra); for ``entra-app`` it names ``approver``."""
        try:
            checked = _verdict(verdict)
            cleaned = clean_comment(comment)
        except BrokerError as refusal:
            self._refuse(refusal, request_id, approver, name, ctx, via=via)
        return self._accept(request_id, approver, name, checked, via, ctx, None, actor, comment=cleaned)

    def refuse(self, error: BrokerError, request_id: str, ctx: CallContext, via: str,
               approver: str = "", name: str = "", actor: Actor | None = None) -> None:
        """Journal a refusal found by the API layer (bad signature, missing role) and raise it."""
        self._refuse(error, request_id, approver, name, ctx, via, actor)

    # --- the checks ---
    def _verify(self, request_id: str, token: str, ctx: CallContext, via: str) -> LinkClaims:
        try:
            if not token:
                raise Forbidden("The approval link has no token.", code="token_invalid")
            return self._tokens.verify(token, request_id)
        except BrokerError as refusal:
            self._refuse(refusal, request_id, "", "", ctx, via)

    def _checked(self, request_id: str, approver: str, name: str, claims: LinkClaims | None, ctx: CallContext,
                 via: str, actor: Actor | None = None, verdict: Verdict | None = None) -> ApprovalRequest:
        """The request, once it is certain this person may decide on exactly this command."""
        try:
            request = self._store.get(request_id)
            if claims is not None and claims.command_digest != request.command_digest:
                raise Forbidden("This link approves a different command than the one held.",
                                code="token_command_mismatch")
            if approver == normal_key(request.requester_key) or same_identity(request.requester,
                                                                               approver.partition("/")[2]):
                raise Forbidden("Nobody may approve their own request.", code="self_approval")
            if actor is not None:
                check_actor(actor, request.requester, self._delegate_role, on_behalf=via == "entra-app")
            requirement = ApprovalRequirement(**request.requirement)
            if not self._directory.is_eligible(approver, requirement, request.requester_key):
                raise Forbidden("You are not an approver for this request.", code="not_an_approver")
            if verdict == "approve" and requirement.require_sign_in and via not in SIGNED_IN_CHANNELS:
                raise Forbidden("This request's policy counts only approvals from approvers who signed in "
                                f"themselves; an approval through '{via}' does not count (a denial would).",
                                code="sign_in_required",
                                remedy="Approve with your own Entra token: POST /api/approvals/{id}/decision "
                                       "(python -m broker requests decide).")
        except BrokerError as refusal:
            self._refuse(refusal, request_id, approver, name, ctx, via, actor)
        return request

    def _accept(self, request_id: str, approver: str, name: str, verdict: Verdict, via: str, ctx: CallContext,
                claims: LinkClaims | None, actor: Actor | None = None, comment: str = "") -> Accepted:
        approver = normal_key(approver)
        request = self._checked(request_id, approver, name, claims, ctx, via, actor, verdict)
        try:
            if claims is not None and self._store.token_used(request_id, claims.token_id):
                raise Conflict("This approval link was used already.", code="token_used")
            if request.status == "expired" or (request.status == "pending"
                                               and request.expires_at.timestamp() <= self._clock()):
                raise Gone("This request has expired; nothing ran.", code="expired")
            if request.status == "cancelled":
                raise Conflict("The requester cancelled this request; nothing will run.", code="request_cancelled",
                               extra={"request_status": request.status})
            if request.status != "pending":
                raise Conflict(f"This request was already decided ({request.status}).", code="already_decided",
                               extra={"request_status": request.status})
            if claims is not None and not self._store.use_token(request_id, claims.token_id, approver):
                raise Conflict("This approval link was used already.", code="token_used")
            row = DecisionRow(approver, name, verdict, via, datetime.now(UTC).isoformat(timespec="milliseconds"),
                              comment)
            if not self._store.add_decision(request_id, row):
                raise Conflict("You have already decided on this request.", code="already_voted")
        except BrokerError as refusal:
            self._refuse(refusal, request_id, approver, name, ctx, via, actor)
        accepted = Accepted(request, approver, name, verdict, via, claims.token_id if claims else None, actor)
        outcome: dict[str, Any] = {"status": verdict, "via": via, "signed_in": via in SIGNED_IN_CHANNELS,
                                   "token_id": accepted.token_id or ""}
        if comment:
            outcome["comment"] = comment
        if actor is not None and via != "entra":
            outcome["on_behalf_by"] = actor.describe()
        self._journal.write(journaled.approval_step(Event.APPROVAL_DECIDED, Subject(
            request_id=request_id, principal=_who(approver, name), target=request.target, command=request.command,
            command_digest=request.command_digest, client=ctx.to_dict()), outcome))
        return accepted

    def journal_refusal(self, error: BrokerError, request_id: str, ctx: CallContext, via: str,
                        approver: str = "", name: str = "", actor: Actor | None = None) -> None:
        outcome: dict[str, Any] = {"status": "refused", "code": error.code, "via": via, "http_status": error.status}
        if actor is not None:
            outcome["actor"] = actor.describe()
        self._journal.write(journaled.approval_step(Event.APPROVAL_REFUSED, Subject(
            request_id=request_id[:64], principal=_who(approver, name), client=ctx.to_dict()), outcome))

    def _refuse(self, error: BrokerError, request_id: str, approver: str, name: str, ctx: CallContext,
                via: str, actor: Actor | None = None) -> Any:
        self.journal_refusal(error, request_id, ctx, via, approver, name, actor)
        raise error


def _verdict(value: str) -> Verdict:
    if value not in ("approve", "deny"):
        raise BadRequest("The decision must be 'approve' or 'deny'.", code="invalid_request")
    return value  # type: ignore[return-value]


def _who(approver: str, name: str) -> dict[str, Any]:
    tenant, _, oid = approver.partition("/")
    return {"tenant_id": tenant, "object_id": oid, "display_name": name, "kind": "user"} if approver else {}
