"""The approval workflow's domain steps: hold a request, ask the approvers, record the outcome,
run the approved command exactly once, and show the requester where things stand.

Called by the HTTP functions (hold, status) and by the workflow activities (notify, conclude,
run). Every transition is an ETag-guarded status change in the request store and a journal
record; nothing here waits or keeps time itself (the orchestrator does).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from broker.approvals.directory import ApproverDirectory
from broker.approvals.outcome import claim_index, failed_problem, failure_of, next_step, outcome_for
from broker.approvals.ports import AfterApproval, JournalSink, RequestRecords, Standing
from broker.approvals.requests import ApprovalRequest
from broker.approvals.tokens import ApprovalTokens
from broker.execute import ApprovalNeeded, CallContext, ExecuteService, Held
from broker.identity import Principal
from broker.journal import Event
from broker.journal import events as journaled
from broker.journal.events import Subject
from broker.notify import ApprovalAsk, Notifier
from broker.policy import ApprovalRequirement
from broker.problems import BrokerError, Conflict, Forbidden, NotFound, Unavailable
from broker.targets import Command

AUDITOR_ROLE = "Broker.Auditor"
OPERATOR_ROLE = "Broker.Operator"
"""May cancel anyone's pending request (the requester may cancel their own)."""
log = logging.getLogger(__name__)


def _measured_policy(request: ApprovalRequest) -> dict[str, Any]:
    """For the journal: the policy's second answer, on the measured rows, when it changed anything."""
    policy = request.preview.get("policy")
    return {"policy": policy} if policy else {}


def principal_from_record(data: dict[str, Any]) -> Principal:
    """The requester as journaled at request time (roles and groups as they were then)."""
    return Principal(tenant_id=data["tenant_id"], object_id=data["object_id"], app_id=data.get("app_id", ""),
                     display_name=data.get("display_name", ""), kind=data.get("kind", "user"),
                     roles=frozenset(data.get("roles", [])), groups=frozenset(data.get("groups", [])))


class ApprovalService:
    def __init__(self, *, store: RequestRecords, directory: ApproverDirectory, tokens: ApprovalTokens,
                 journal: JournalSink, notifier: Notifier, public_base_url: str,
                 clock: Callable[[], float] = time.time,
                 after_approval: Mapping[str, AfterApproval] | None = None) -> None:
        """``after_approval``: per request kind, where its approved requests stand now (grants)."""
        self.store = store
        self.directory = directory
        self.tokens = tokens
        self._journal = journal
        self._notifier = notifier
        self._base = public_base_url.rstrip("/")
        self._clock = clock
        self._after = dict(after_approval or {})

    def get(self, request_id: str) -> ApprovalRequest:
        """The request as stored (404 ``not_found``): for the workflow steps and the grants."""
        return self.store.get(request_id)

    def status_url(self, request_id: str) -> str:
        return f"{self._base}/api/requests/{request_id}"

    def held(self, request: ApprovalRequest, *, resubmitted: bool = False) -> Held:
        """The pending answer's facts for a held request (REST 202 body, MCP result)."""
        return Held(request_id=request.request_id, kind=request.kind, status=request.status, target=request.target,
                    risk=request.classification.get("risk"), expires_at=request.expires_at.isoformat(),
                    quorum=request.quorum, groups=tuple(request.requirement.get("groups", [])),
                    status_url=self.status_url(request.request_id), resubmitted=resubmitted)

    # --- holding a request (the execute service's approval port) ---
    def hold(self, needed: ApprovalNeeded, ctx: CallContext) -> Held:
        """Hold the command for its approvers; ``resubmitted`` when an open request answers instead."""
        request = self.hold_command(needed, ctx)
        return self.held(request, resubmitted=request.request_id != needed.request_id)

    def hold_command(self, needed: ApprovalNeeded, ctx: CallContext) -> ApprovalRequest:
        """Persist the exact command for the approvers and journal ``execute.pending``.

        The same caller sending the same command again while it is pending, or the same
        idempotency key while its request lives, gets that request back (a different
        ``request_id`` than ``needed``'s: nothing new was opened, and no workflow starts)."""
        requirement = needed.decision.approval or ApprovalRequirement()
        now = datetime.fromtimestamp(self._clock(), UTC)
        request = ApprovalRequest(
            request_id=needed.request_id, kind="command", status="pending", requester=needed.principal.describe(),
            target=needed.target.name, command_digest=needed.command.digest,
            requirement=requirement.model_dump(mode="json"),
            expires_at=datetime.fromtimestamp(int(self._clock()) + requirement.timeout_seconds, UTC), created_at=now,
            command=needed.command.canonical(), classification=needed.classification.to_dict(),
            decision=needed.decision.to_dict(), reason=needed.body.reason, ticket=needed.body.ticket)
        subject = needed.subject.refined(client=ctx.to_dict())
        claimed: list[str] = []
        try:
            key = needed.body.idempotency_key
            if key:
                index = claim_index("key", request.requester_key, key)
                existing = self._claimed(index, request, lambda r: r.expires_at > now)
                if existing is not None:
                    if (existing.target, existing.command_digest) != (request.target, request.command_digest):
                        refusal = Conflict(
                            "This idempotency key was used for a different command; nothing was started.",
                            code="idempotency_key_reused", remedy="Use a new key for a new command.",
                            extra={"existing_request_id": existing.request_id})
                        self._journal.write(journaled.execute_denied(subject, refusal.code,
                                                                     same_as=existing.request_id))
                        raise refusal
                    return self._resubmitted(existing, subject, "idempotency_key")
                claimed.append(index)
            index = claim_index("pending", request.requester_key, request.target, request.command_digest)
            existing = self._claimed(index, request, lambda r: r.status == "pending" and r.expires_at > now)
            if existing is not None:
                return self._resubmitted(existing, subject, "same_command")
            claimed.append(index)
            return self.open(request, subject)
        except BaseException:
            for index in claimed:
                self.store.release_claim(index, request.request_id)
            raise

    def _claimed(self, index: str, request: ApprovalRequest,
                 live: Callable[[ApprovalRequest], bool]) -> ApprovalRequest | None:
        """None once ``index`` points at ``request``; the live request that holds it otherwise."""
        for attempt in range(12):
            held = self.store.claim(index, request)
            if held is None or held.request_id == request.request_id:
                return None
            current = self.store.find(held.request_id)
            if current is None and attempt < 8:
                time.sleep(0.05)  # a concurrent hold claimed it and is writing its request now
                continue
            if current is not None and live(current):
                return current
            if self.store.take_over(index, held, request):
                return None
        raise Unavailable("The approval store keeps changing; try again.", code="approvals_busy")

    def _resubmitted(self, existing: ApprovalRequest, subject: Subject, matched: str) -> ApprovalRequest:
        """Journal that a submission was answered with the request already open."""
        self._journal.write(journaled.execute_pending(subject.refined(request_id=existing.request_id), {
            "status": existing.status, "resubmitted": True, "matched": matched, "submission": subject.request_id}))
        return existing

    def open(self, request: ApprovalRequest, subject: Subject) -> ApprovalRequest:
        """Refuse up front when nobody could ever reach the quorum; else store and journal it
        (``execute.pending`` for a command, ``grant.requested`` for a grant)."""
        requirement = ApprovalRequirement(**request.requirement)
        approvers = self.directory.eligible(requirement, request.requester_key)
        if len(approvers) < requirement.quorum:
            refusal = Forbidden(
                f"This needs {requirement.quorum} approval(s) from {list(requirement.groups) or 'approvers'}, "
                f"but only {len(approvers)} eligible approver(s) other than you are configured.",
                code="no_approvers", remedy="Ask an operator to add approvers (BROKER_APPROVERS_PATH).")
            refused = journaled.refused(refusal.code)
            self._journal.write(journaled.execute_denied(subject, refusal.code) if request.kind == "command"
                                else journaled.grant_step(Event.GRANT_REQUESTED, subject, refused))
            raise refusal
        self.store.create(request)
        pending = {"status": "pending", "expires_at": request.expires_at.isoformat(), "quorum": requirement.quorum,
                   "approvers": [a.name for a in approvers]}
        self._journal.write(journaled.execute_pending(subject, pending) if request.kind == "command"
                            else journaled.grant_step(Event.GRANT_REQUESTED, subject, pending))
        return request

    def abandon(self, request_id: str, error: BrokerError) -> None:
        """The orchestration could not start: the request ends as failed, nothing will run."""
        request = self.store.transition(request_id, {"pending"}, "failed", ended_at=_now(),
                                        error={"code": error.code, "detail": error.detail})
        self._write(Event.APPROVAL_FAILED, request, {"status": "failed", "code": error.code})

    # --- the requester changes their mind ---
    def cancel(self, request_id: str, principal: Principal) -> ApprovalRequest:
        """pending -> cancelled (ETag-guarded), journaled with who; the caller then tells the workflow.

        Only the requester (same tenant and object id) or an operator; anyone else is told there is
        no such request, exactly as for an unknown id."""
        request = self.store.find(request_id)
        if request is None or not (principal.key == request.requester_key or OPERATOR_ROLE in principal.roles):
            raise NotFound(f"No approval request {request_id}.", code="not_found")
        role = "requester" if principal.key == request.requester_key else "operator"
        cancelled = self.store.transition(request_id, {"pending"}, "cancelled", ended_at=_now(), ended_by={
            "id": principal.key, "name": principal.display_name, "as": role})
        self._write(Event.APPROVAL_CANCELLED, cancelled, {"status": "cancelled", "by": role},
                    principal=principal.describe())
        return cancelled

    # --- workflow activities ---
    def preview(self, request: ApprovalRequest, execute: ExecuteService) -> ApprovalRequest:
        """What the held command would do (the engine's masked dry run), kept with the request so the
        page and the mail show it. Idempotent: a retried activity finds it done. A dry run the
        target refuses is kept as an error; the request then fails (approvers never decide blind)."""
        if request.kind != "command" or request.preview:
            return request
        try:
            made = execute.preview_held(principal_from_record(request.requester), request.target,
                                        command_of(request), request.request_id)
            preview: dict[str, Any] = ({"diff": made.diff, "masked": made.masked, "record_id": made.record_id}
                                       if made is not None else {"none": True})
            changes: dict[str, Any] = {}
            if made is not None and made.impact is not None:  # SQL: the measured impact (a failed trial too)
                preview = {"impact": made.impact}
                again = made.measured_decision
                if again is not None:  # the policy, asked again with the rows measured, answers otherwise
                    preview["policy"] = {"effect": again.effect, "rule": again.rule_id, "reason": again.reason,
                                         "remedy": again.remedy or ""}
                    if again.effect == "approve" and again.approval is not None:
                        changes["requirement"] = again.approval.model_dump(mode="json")
                        preview["policy"]["quorum"] = again.approval.quorum
                        who = list(again.approval.groups) or "approvers"
                        preview["impact"] = {**made.impact, "notes": [
                            *made.impact.get("notes", []), f"for the rows it changes, policy rule {again.rule_id} "
                            f"asks {again.approval.quorum} approval(s) from {who}"]}
        except BrokerError as refusal:
            preview, changes = {"error": f"{refusal.code}: {refusal.detail}", "code": refusal.code}, {}
        return self.store.transition(request.request_id, {"pending"}, "pending", preview=preview, **changes)

    def notify(self, request_id: str, execute: ExecuteService | None = None) -> dict[str, Any]:
        request = self.store.get(request_id)
        if request.status != "pending":
            return {"sent": 0, "status": request.status, "approvers": []}
        if execute is not None:
            request = self.preview(request, execute)
            if request.preview.get("error"):
                return {"sent": 0, "status": "failed", "error": "preview_failed", "approvers": []}
            if (request.preview.get("impact") or {}).get("exceeds"):  # the run would refuse it: ask nobody
                return {"sent": 0, "status": "failed", "error": "impact_exceeded", "approvers": []}
            if (request.preview.get("policy") or {}).get("effect") == "deny":  # denied for the rows it touches
                return {"sent": 0, "status": "failed", "error": "policy_denied", "approvers": []}
        requirement = ApprovalRequirement(**request.requirement)
        eligible = self.directory.eligible(requirement, request.requester_key)
        if len(eligible) < requirement.quorum:  # the measured rows chose approvers who cannot reach it
            return {"sent": 0, "status": "failed", "error": "no_approvers", "approvers": []}
        asks = []
        for approver in eligible:
            token = self.tokens.issue(request_id, approver.key, approver.name, request.command_digest,
                                      request.expires_at)
            asks.append(ApprovalAsk(approver, request, f"{self._base}/api/approvals/{request_id}?t={token}",
                                    f"{self._base}/api/approvals/{request_id}/decision"))
        self._notifier.ask(asks)
        self._write(Event.APPROVAL_NOTIFIED, request, {
            "status": "sent", "channel": self._notifier.channel,
            "approvers": [{"name": a.approver.name, "id": a.approver.key} for a in asks], "quorum": requirement.quorum,
            **_measured_policy(request)})
        return {"sent": len(asks), "status": "pending", "approvers": [a.approver.key for a in asks],
                "quorum": requirement.quorum}

    def conclude(self, request_id: str, outcome: dict[str, Any]) -> dict[str, Any]:
        """Record how the wait ended. Idempotent: a re-delivered activity finds it already done."""
        status = outcome["status"]
        approvals = list(outcome.get("approvals", []))
        changes: dict[str, Any] = {"approved_by": approvals}
        if status != "approved":
            changes.update(ended_at=_now(), ended_by=outcome.get("denied_by", {}),
                           error={"code": outcome["error"]} if outcome.get("error") else {})
        try:
            request = self.store.transition(request_id, {"pending"}, status, **changes)
        except BrokerError:
            current = self.store.get(request_id)
            if current.status == "cancelled":  # the requester cancelled first: nothing runs
                return {"status": "cancelled"}
            if current.status == status or status != "approved":
                return {"status": current.status}
            raise
        event = {"approved": Event.APPROVAL_APPROVED, "denied": Event.APPROVAL_DENIED,
                 "expired": Event.APPROVAL_EXPIRED, "cancelled": Event.APPROVAL_CANCELLED}.get(status,
                                                                                      Event.APPROVAL_FAILED)
        self._write(event, request, {"status": status, "approvals": approvals,
                                     "denied_by": outcome.get("denied_by"), "code": outcome.get("error"),
                                     **_measured_policy(request)})
        return {"status": status}

    def run(self, request_id: str, execute: ExecuteService) -> dict[str, Any]:
        """Run the approved command once: approved -> running is the one-way gate."""
        try:
            request = self.store.transition(request_id, {"approved"}, "running")
        except (Conflict, BrokerError):
            current = self.store.get(request_id)
            if current.status == "running":
                # An earlier attempt died mid-run: it may have run. Never run twice; report it.
                self.store.transition(request_id, {"running"}, "failed", ended_at=_now(), error={
                    "code": "interrupted", "detail": "The broker stopped while the command was running: it may or may "
                    "not have run, and it is not repeated (run once)."})
                self._write(Event.APPROVAL_FAILED, current, {"status": "failed", "code": "interrupted"})
                return {"status": "failed", "code": "interrupted"}
            return {"status": current.status}
        command = command_of(request)
        try:
            result = execute.run_approved(principal_from_record(request.requester), request.target, command,
                                          request.command_digest, request_id, request.approved_by, request.reason,
                                          request.ticket, impact=request.preview.get("impact"))
        except BrokerError as failure:
            self.store.transition(request_id, {"running"}, "failed", ended_at=_now(),
                                  error={"code": failure.code, "detail": failure.detail, "status": failure.status})
            return {"status": "failed", "code": failure.code}
        except Exception:  # a bug or a dropped dependency: the request still ends, as failed
            log.exception("approved request %s failed while running", request_id)
            self.store.transition(request_id, {"running"}, "failed", ended_at=_now(), error={
                "code": "run_failed", "detail": "The approved command failed inside the broker; it is not repeated."})
            self._write(Event.APPROVAL_FAILED, request, {"status": "failed", "code": "run_failed"})
            return {"status": "failed", "code": "run_failed"}
        ref = self.store.store_result(request_id, result.to_dict())
        self.store.transition(request_id, {"running"}, "done", ended_at=_now(), result_ref=ref)
        return {"status": "done", "record_id": result.record_id}

    # --- reading ---
    def visible_request(self, request_id: str, principal: Principal) -> ApprovalRequest:
        request = self.store.get(request_id)
        if principal.key != request.requester_key and AUDITOR_ROLE not in principal.roles:
            raise Forbidden("Only the identity that made this request (or an auditor) may see it.",
                            code="not_requester")
        return request

    def summary(self, r: ApprovalRequest, standing: Standing | None = None) -> dict[str, Any]:
        """One line of a listing: no command text, no result (those are at ``status_url``)."""
        if standing is None:
            standing = self._standing([r]).get(r.request_id)
        return {"request_id": r.request_id, "kind": r.kind, "status": standing.status if standing else r.status,
                "target": r.target, "risk": r.classification.get("risk"), "created_at": r.created_at.isoformat(),
                "expires_at": r.expires_at.isoformat(), "reason": r.reason, "status_url": self.status_url(r.request_id),
                "next_step": standing.next_step if standing else next_step(r)}

    def mine(self, principal: Principal, limit: int) -> list[dict[str, Any]]:
        """The caller's own requests, newest first."""
        found = self.store.mine(principal.key, limit)
        standings = self._standing(found)
        return [self.summary(r, standings.get(r.request_id)) for r in found]

    def _standing(self, requests: Sequence[ApprovalRequest]) -> dict[str, Standing]:
        """Where the approved requests among these stand, asked of the kind that carries them on."""
        found: dict[str, Standing] = {}
        for kind, after in self._after.items():
            mine = [r for r in requests if r.kind == kind]
            if mine:
                found.update(after.standing(mine))
        return found

    def status(self, request_id: str, principal: Principal) -> dict[str, Any]:
        r = self.visible_request(request_id, principal)
        now = datetime.fromtimestamp(self._clock(), UTC)
        decisions = self.store.decisions(r.request_id)
        body: dict[str, Any] = {
            "request_id": r.request_id, "kind": r.kind, "status": r.status, "target": r.target,
            "status_url": self.status_url(r.request_id), "created_at": r.created_at.isoformat(),
            "expires_at": r.expires_at.isoformat(), "quorum": r.quorum,
            "risk": r.classification.get("risk"), "command_digest": r.command_digest, "reason": r.reason,
            "decisions": [{"approver": d.name, "approver_id": d.approver, "verdict": d.verdict, "via": d.via,
                           "at": d.at, **({"comment": d.comment} if d.comment else {})} for d in decisions],
        }
        body.update(outcome_for(r, decisions))
        if r.status == "pending":
            body["seconds_left"] = max(0, int((r.expires_at - now).total_seconds()))
        if r.kind == "command":
            body["command"] = r.command
        grant, ended_by, ended_at, error = r.grant, r.ended_by, r.ended_at, failure_of(r)
        standing = self._standing([r]).get(r.request_id)
        if standing is not None:  # its life went on after the approval: that is where it stands
            body.update(status=standing.status, next_step=standing.next_step)
            grant, ended_by, ended_at, error = standing.grant, standing.ended_by, standing.ended_at, standing.error
        if grant:
            body["grant"] = grant
        if ended_by:
            body["ended_by"] = ended_by
        if ended_at:
            body["ended_at"] = ended_at
        if error:
            body["error"] = error
        if body["status"] == "failed" and "problem" not in body:  # a grant that failed after its approval
            body["problem"] = failed_problem(r.request_id, error, {
                "request_id": r.request_id, "request_status": "failed", "next_step": body["next_step"]}).to_problem()
        if r.status == "done":
            body["result"] = self.store.load_result(r.request_id)
        return body

    def _write(self, event: str, request: ApprovalRequest, outcome: dict[str, Any],
               principal: dict[str, Any] | None = None) -> str:
        subject = subject_of(request)
        if principal is not None:
            subject = subject.refined(principal=principal)
        return self._journal.write(journaled.approval_step(event, subject,
                                                           {k: v for k, v in outcome.items() if v is not None}))


def subject_of(request: ApprovalRequest) -> Subject:
    """A held request as every later record of it carries it (the requester, the exact command)."""
    return Subject(request_id=request.request_id, principal=request.requester, target=request.target,
                   command=request.command, command_digest=request.command_digest,
                   classification=request.classification, decision=request.decision, reason=request.reason,
                   ticket=request.ticket)


def command_of(request: ApprovalRequest) -> Command:
    """The held command, rebuilt from its canonical form (its digest is checked before it runs)."""
    return Command(request.command["language"], sql=request.command.get("sql", ""),
                   argv=tuple(request.command.get("argv", ())), manifest=request.command.get("manifest"))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
