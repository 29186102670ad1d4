"""Just-in-time grants: request (held for approval like a command), activate, end, revoke early.

The grant's approvers and its longest duration come from the policy: a grant of ``level`` on a
target is judged like a command of that risk by the requester. If the rules already allow it,
no grant is needed; if a deny rule matches, no grant can lift it; if they require approval,
that approval requirement is the grant's.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from broker.approvals import ApprovalRequest, ApprovalService
from broker.approvals.directory import ApproverDirectory
from broker.approvals.ports import GrantRecords, JournalSink
from broker.approvals.service import subject_of
from broker.catalog import Catalog
from broker.execute import GRANT_ORCHESTRATOR, CallContext, Pending, WorkflowStarter, start_or_abandon
from broker.grants.store import GrantRecord
from broker.guard import Classification, Risk
from broker.identity import Principal
from broker.journal import Event
from broker.journal import events as journaled
from broker.journal.events import Subject
from broker.policy import ApprovalRequirement, Policy
from broker.problems import BadRequest, BrokerError, Conflict, Forbidden, invalid_body


class GrantBody(BaseModel):
    """``POST /api/grants``: ``duration`` is ISO 8601 (``PT30M``, ``PT2H``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    target: str = Field(min_length=1, max_length=63)
    level: Literal["read", "write"]
    duration: timedelta
    reason: str = Field(min_length=1, max_length=500)
    ticket: str = Field(default="", max_length=100)

    @classmethod
    def parse(cls, data: Any) -> GrantBody:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise invalid_body(exc, "grant") from exc


def iso_duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return "PT" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "") + (
        f"{secs}S" if secs or not (hours or minutes) else "")


class GrantService:
    def __init__(self, *, catalog: Catalog, policy: Policy, store: GrantRecords, approvals: ApprovalService,
                 directory: ApproverDirectory, journal: JournalSink, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self._catalog = catalog
        self._policy = policy
        self._approvals = approvals
        self._directory = directory
        self._journal = journal
        self._clock = clock

    def submit(self, principal: Principal, body: GrantBody, ctx: CallContext, *,
               workflow: WorkflowStarter) -> Pending:
        """Hold the grant for its approvers and start its workflow (refusals raise, journaled)."""
        request = self.request(principal, body, ctx)
        held = self._approvals.held(request)
        start_or_abandon(workflow, self._approvals, GRANT_ORCHESTRATOR, held,
                         duration_seconds=int(body.duration.total_seconds()))
        return Pending(held)

    def request(self, principal: Principal, body: GrantBody, ctx: CallContext) -> ApprovalRequest:
        target = self._catalog.get(body.target)
        decision = self._policy.decide_grant(principal, target, body.level)
        cap = timedelta(seconds=decision.limits.max_grant_duration)
        request_id = str(uuid.uuid4())
        terms = {"grant": {"target": target.name, "level": body.level,
                           "duration_seconds": int(body.duration.total_seconds())}}
        digest = "sha256:" + hashlib.sha256(json.dumps(terms, sort_keys=True).encode()).hexdigest()
        classification = Classification(risk=Risk.WRITE if body.level == "write" else Risk.READ,
                                        reason=f"a just-in-time {body.level} grant", language="grant",
                                        statement=f"GRANT {body.level.upper()}")
        subject = Subject(request_id=request_id, principal=principal.describe(), client=ctx.to_dict(),
                          reason=body.reason, ticket=body.ticket, target=target.name, command=terms,
                          command_digest=digest, classification=classification.to_dict(),
                          decision=decision.to_dict())
        refusal: BrokerError | None = None
        if decision.effect == "allow":
            refusal = Conflict(f"The policy already allows {body.level} on {target.name} for you; no grant is "
                               "needed.", code="grant_not_needed")
        elif decision.effect != "approve" or decision.approval is None:
            refusal = Forbidden(f"No grant can give {body.level} on {target.name}: {decision.reason}.",
                                code="policy_denied", remedy=decision.remedy)
        elif body.duration <= timedelta(0) or body.duration > cap:
            refusal = BadRequest(f"A grant of {body.level} on {target.name} lasts between 1 s and "
                                 f"{iso_duration(cap)} (the policy's maximum).", code="invalid_duration",
                                 extra={"max_duration": iso_duration(cap)})
        if refusal is not None:
            self._journal.write(journaled.grant_step(Event.GRANT_REQUESTED, subject, journaled.refused(refusal.code)))
            raise refusal
        requirement: ApprovalRequirement = decision.approval
        now = int(self._clock())
        request = ApprovalRequest(
            request_id=request_id, kind="grant", status="pending", requester=principal.describe(),
            target=target.name, command_digest=digest, requirement=requirement.model_dump(mode="json"),
            expires_at=datetime.fromtimestamp(now + requirement.timeout_seconds, UTC),
            created_at=datetime.fromtimestamp(now, UTC), command=terms, classification=classification.to_dict(),
            decision=decision.to_dict(), reason=body.reason, ticket=body.ticket,
            grant={"level": body.level, "duration": iso_duration(body.duration),
                   "duration_seconds": int(body.duration.total_seconds())})
        self._approvals.open(request, subject)
        try:
            self.store.create(GrantRecord(request_id, principal.key, target.name, body.level,
                                          int(body.duration.total_seconds()), body.reason))
        except BrokerError as failure:
            self._approvals.abandon(request_id, failure)  # no half-made request left pending
            raise
        return request

    # --- workflow activities ---
    def conclude_unapproved(self, request_id: str, status: str) -> None:
        """The approval failed (denied, expired): the pending grant row follows."""
        request = self._approvals.store.get(request_id)
        self.store.transition(request.requester_key, request_id, {"pending"}, status,
                              ended_at=datetime.now(UTC))

    def activate(self, request_id: str, duration_seconds: int) -> dict[str, Any]:
        """Open the approved grant now, until now + its duration (whole seconds)."""
        held = self._approvals.store.get(request_id)
        expires_at = datetime.fromtimestamp(int(self._clock()) + int(duration_seconds), UTC)
        if held.status == "active":  # a re-delivered activity: it is already open
            return {"status": "active", "expires_at": held.grant.get("expires_at")}
        request = self._approvals.store.transition(request_id, {"approved"}, "active",
                                                   grant={**held.grant, "expires_at": expires_at.isoformat()})
        record = self.store.transition(request.requester_key, request_id, {"pending"}, "active",
                                       activated_at=datetime.now(UTC), expires_at=expires_at,
                                       approved_by=request.approved_by)
        if record is None:
            return {"status": "gone"}
        self._write(Event.GRANT_ACTIVATED, request, {"status": "active", "expires_at": expires_at.isoformat(),
                                                     "approved_by": request.approved_by})
        return {"status": "active", "expires_at": expires_at.isoformat()}

    def end(self, request_id: str, how: Literal["expired", "revoked"], by: dict[str, Any]) -> dict[str, Any]:
        """End an active grant (idempotent: an early revoke already ended it)."""
        request = self._approvals.store.get(request_id)
        ended_by = {"how": how, **by}
        record = self.store.transition(request.requester_key, request_id, {"active"}, "revoked",
                                       ended_at=datetime.now(UTC), ended_by=ended_by)
        if record is None:
            return {"status": "revoked", "already": True}
        request = self._approvals.store.transition(request_id, {"active"}, "revoked",
                                                   ended_at=datetime.now(UTC).isoformat(timespec="seconds"),
                                                   ended_by=ended_by)
        self._write(Event.GRANT_REVOKED, request, {"status": "revoked", "how": how, "by": by})
        return {"status": "revoked"}

    def revoke(self, request_id: str, principal: Principal) -> dict[str, Any]:
        """Early revoke, by an approver for the grant's requirement or by the grantee."""
        request = self._approvals.store.get(request_id)
        if request.kind != "grant":
            raise BadRequest(f"{request_id} is not a grant.", code="not_a_grant")
        requirement = ApprovalRequirement(**request.requirement)
        grantee = principal.key == request.requester_key
        approver = self._directory.is_eligible(principal.key, requirement, request.requester_key)
        if not (grantee or approver):
            raise Forbidden("Only an approver of this grant, or its grantee, may revoke it.", code="not_an_approver")
        if request.status != "active":
            raise Conflict(f"The grant is {request.status}, not active.", code="not_active",
                           extra={"request_status": request.status})
        by = {"id": principal.key, "name": principal.display_name, "as": "grantee" if grantee else "approver"}
        return self.end(request_id, "revoked", by)

    def list_for(self, principal: Principal) -> list[dict[str, Any]]:
        return [g.to_dict() for g in self.store.list_for(principal.key)]

    def _write(self, event: str, request: ApprovalRequest, outcome: dict[str, Any]) -> None:
        self._journal.write(journaled.grant_step(event, subject_of(request).refined(decision={}), outcome))

