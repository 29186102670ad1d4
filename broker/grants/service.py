"""Just-in-time grants: request (held for approval like a command), activate, end, revoke early.

The grant's approvers and its longest duration come from the policy: a grant of ``level`` on a
target is judged like a command of that risk by the requester. If the rules already allow it,
no grant is needed; if a deny rule matches, no grant can lift it; if they require approval,
that approval requirement is the grant's.

After its approval the grant's lifecycle (pending -> active -> revoked, or failed) lives only in the
grant store, each step one ETag-guarded write of the grant's row; the approval request ends at
approved and is never moved for the grant. What callers read is joined in ``view.py``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from broker.approvals.directory import ApproverDirectory
from broker.approvals.ports import JournalSink
from broker.approvals.requests import ApprovalRequest
from broker.approvals.service import subject_of
from broker.catalog import Catalog
from broker.execute import GRANT_ORCHESTRATOR, CallContext, Pending, WorkflowStarter, start_or_abandon
from broker.grants.ports import ApprovalRequests, GrantRecords
from broker.grants.store import GrantRecord
from broker.grants.view import GrantView, standing_of
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

    @field_validator("duration", mode="before")
    @classmethod
    def _iso_text(cls, value: Any) -> Any:
        """ISO 8601 text only, as documented: a bare number (which pydantic would read as seconds) is
        refused, so the schema (a string of 3 to 20 characters) is exactly what the server takes."""
        if not isinstance(value, str) or not 3 <= len(value) <= 20:
            raise ValueError("the duration is ISO 8601 text of 3 to 20 characters, e.g. PT30M")
        return value

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


log = logging.getLogger(__name__)


class GrantService:
    """Moves grants through their lifecycle in the grant store; reaches the approvals only through
    ``ApprovalRequests`` (hold the request, read how its approval ended)."""

    def __init__(self, *, catalog: Catalog, policy: Policy, store: GrantRecords, approvals: ApprovalRequests,
                 directory: ApproverDirectory, journal: JournalSink, clock: Callable[[], float] = time.time,
                 view: GrantView | None = None) -> None:
        self.store = store
        self.view = view or GrantView(store)
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
        elif body.duration < timedelta(seconds=1) or body.duration > cap:  # whole seconds are kept
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

    # --- workflow activities: the grant's lifecycle, one ETag-guarded write of its one row each ---
    def conclude_unapproved(self, request_id: str, status: str) -> None:
        """The approval did not open it (denied, expired, cancelled, failed): the pending row follows.
        Idempotent: a row that moved already stays as it is."""
        request = self._approvals.get(request_id)
        self.store.transition(request.requester_key, request_id, {"pending"}, status, ended_at=datetime.now(UTC))

    def activate(self, request_id: str, duration_seconds: int) -> dict[str, Any]:
        """Open the approved grant now, until now + its duration (whole seconds).

        Only the grant row moves (the request stays approved), so there is no second write to lose.
        A re-delivered activity finds the row open and answers the same expiry. When the row cannot be
        written nothing changed, ``grant.failed`` says so and the error goes up (the workflow retries);
        when the journal refuses ``grant.activated`` the opening is undone before the error goes up."""
        request = self._granted(request_id)
        record = self.store.get(request.requester_key, request_id)
        if record.status != "pending":
            return _opened(record)
        legacy = request.grant.get("expires_at")  # fixed on the request row by the old code: keep it
        expires_at = (datetime.fromisoformat(legacy) if legacy else
                      datetime.fromtimestamp(int(self._clock()) + int(duration_seconds), UTC))
        try:
            opened = self.store.transition(request.requester_key, request_id, {"pending"}, "active",
                                           activated_at=datetime.now(UTC), expires_at=expires_at,
                                           approved_by=request.approved_by)
        except BrokerError as failure:
            self._failed(request, "activate", "pending", failure)
            raise
        if opened is None:  # it moved in between (a concurrent delivery opened it)
            return _opened(self.store.get(request.requester_key, request_id))
        try:
            self._write(Event.GRANT_ACTIVATED, request, {"status": "active", "expires_at": expires_at.isoformat(),
                                                         "approved_by": request.approved_by})
        except BrokerError:
            # not honoured unjournaled: back to pending, so the retried activity opens it (and journals it)
            self.store.transition(request.requester_key, request_id, {"active"}, "pending", activated_at=None,
                                  expires_at=None)
            raise
        return {"status": "active", "expires_at": expires_at.isoformat()}

    def abandon(self, request_id: str, code: str) -> dict[str, Any]:
        """The grant could not be opened, even after the workflow's retries: pending -> failed,
        journaled; nothing is granted. A row that opened after all answers as ``activate`` does."""
        request = self._approvals.get(request_id)
        failed = self.store.transition(request.requester_key, request_id, {"pending"}, "failed",
                                       ended_at=datetime.now(UTC), error={
                                           "code": code, "detail": "The grant was approved but could not be opened; "
                                           "nothing is granted."})
        if failed is None:
            return _opened(self.store.get(request.requester_key, request_id))
        self._write(Event.GRANT_FAILED, request, {"status": "failed", "step": "activate", "code": code})
        return {"status": "failed"}

    def end(self, request_id: str, how: Literal["expired", "revoked"], by: dict[str, Any]) -> dict[str, Any]:
        """End the grant: active -> revoked (idempotent: an early revoke already ended it). A row still
        pending (the old code could leave one behind a request it called active) ends too."""
        request = self._approvals.get(request_id)
        ended_by = {"how": how, **by}
        try:
            record = self.store.transition(request.requester_key, request_id, {"active", "pending"}, "revoked",
                                           ended_at=datetime.now(UTC), ended_by=ended_by)
        except BrokerError as failure:
            self._failed(request, "end", "active", failure)
            raise
        if record is None:
            return {"status": "revoked", "already": True}
        self._write(Event.GRANT_REVOKED, request, {"status": "revoked", "how": how, "by": by})
        return {"status": "revoked"}

    def revoke(self, request_id: str, principal: Principal) -> dict[str, Any]:
        """Early revoke, by an approver for the grant's requirement or by the grantee."""
        request = self._approvals.get(request_id)
        if request.kind != "grant":
            raise BadRequest(f"{request_id} is not a grant.", code="not_a_grant")
        requirement = ApprovalRequirement(**request.requirement)
        grantee = principal.key == request.requester_key
        approver = self._directory.is_eligible(principal.key, requirement, request.requester_key)
        if not (grantee or approver):
            raise Forbidden("Only an approver of this grant, or its grantee, may revoke it.", code="not_an_approver")
        standing = standing_of(request, self.view.record_of(request))
        status = standing.status if standing else request.status
        if status != "active":
            raise Conflict(f"The grant is {status}, not active.", code="not_active", extra={"request_status": status})
        by = {"id": principal.key, "name": principal.display_name, "as": "grantee" if grantee else "approver"}
        return self.end(request_id, "revoked", by)

    def _granted(self, request_id: str) -> ApprovalRequest:
        """The grant request, refused unless its approval ended approved (``active``: a row of the old code)."""
        request = self._approvals.get(request_id)
        if request.kind != "grant":
            raise BadRequest(f"{request_id} is not a grant.", code="not_a_grant")
        if request.status not in ("approved", "active"):
            raise Conflict(f"Request {request_id} is {request.status}, not approved.", code="already_decided",
                           extra={"request_status": request.status})
        return request

    def _failed(self, request: ApprovalRequest, step: str, status: str, failure: BrokerError) -> None:
        """Journal that a step could not move the grant row (it stays ``status``); the failure still goes up."""
        try:
            self._write(Event.GRANT_FAILED, request, {"status": status, "step": step, "code": failure.code})
        except BrokerError:
            log.warning("grant %s: %s failed (%s) and the journal refused to say so", request.request_id, step,
                        failure.code)

    def list_for(self, principal: Principal) -> list[dict[str, Any]]:
        return [g.to_dict() for g in self.store.list_for(principal.key)]

    def _write(self, event: str, request: ApprovalRequest, outcome: dict[str, Any]) -> None:
        self._journal.write(journaled.grant_step(event, subject_of(request).refined(decision={}), outcome))



def _opened(record: GrantRecord) -> dict[str, Any]:
    """What ``activate`` answers for a row that is no longer pending: open (its expiry), or gone."""
    if record.status == "active" and record.expires_at is not None:
        return {"status": "active", "expires_at": record.expires_at.isoformat()}
    return {"status": "gone"}
