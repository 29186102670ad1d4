"""Where a grant request stands, for the people and agents who ask: the one place its status is
computed, by joining the approval request with the grant record, never stored twice.

Until its approval ends, a grant request's status is the request's own (pending, denied, expired,
cancelled, failed). Once it is approved, the grant record has the word: ``approved`` while it opens,
then ``active`` (with ``grant.expires_at``), ``revoked`` (at its expiry or early) or ``failed``.
Request rows written before the grant lifecycle moved here may say ``active`` or ``revoked``
themselves; for them too the grant record decides (the old code moved both rows one after the other,
so the record is the one that was right when they disagree).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from broker.approvals.ports import Standing
from broker.approvals.requests import ApprovalRequest
from broker.grants.ports import GrantRecords
from broker.grants.store import GrantRecord
from broker.problems import NotFound

APPROVED_OR_LEGACY = frozenset({"approved", "active", "revoked"})
"""Request statuses after which the grant record decides (``active``/``revoked``: rows of old code)."""

NEXT_STEPS = {
    "approved": "Wait: it was approved and the grant opens now; poll status_url.",
    "active": "The grant is open until grant.expires_at: send commands as usual.",
    "revoked": "The grant ended; ask for a new one (POST /api/grants) if you still need it.",
    "failed": "The grant was approved but could not be opened (`error` says why); nothing is granted. "
              "Ask for it again (POST /api/grants).",
}


def standing_of(request: ApprovalRequest, record: GrantRecord | None) -> Standing | None:
    """The grant request as callers see it; None while the request's own status is the answer."""
    if request.status not in APPROVED_OR_LEGACY:
        return None
    terms = {k: v for k, v in request.grant.items() if k != "expires_at"}
    if record is None:  # no row (never expected): the request row's own word, as the old code showed it
        status = request.status
        return Standing(status, NEXT_STEPS.get(status, ""), grant=request.grant, ended_at=request.ended_at,
                        ended_by=request.ended_by)
    if record.status == "pending":  # approved, not open (yet): nothing is honoured
        return Standing("approved", NEXT_STEPS["approved"], grant=terms)
    grant = {**terms, "expires_at": record.expires_at.isoformat()} if record.expires_at else terms
    ended_at = record.ended_at.isoformat(timespec="seconds") if record.ended_at else ""
    return Standing(record.status, NEXT_STEPS.get(record.status, ""), grant=grant, ended_at=ended_at,
                    ended_by=record.ended_by, error=record.error)


class GrantView:
    """``AfterApproval`` for grant requests: reads the grant records, one point read for one request,
    one partition query per grantee for a listing."""

    def __init__(self, records: GrantRecords) -> None:
        self._records = records

    def record_of(self, request: ApprovalRequest) -> GrantRecord | None:
        try:
            return self._records.get(request.requester_key, request.request_id)
        except NotFound:
            return None

    def standing(self, requests: Sequence[ApprovalRequest]) -> dict[str, Standing]:
        after = [r for r in requests if r.kind == "grant" and r.status in APPROVED_OR_LEGACY]
        records: dict[str, GrantRecord] = {}
        if len(after) == 1:
            found = self.record_of(after[0])
            records = {found.grant_id: found} if found else {}
        elif after:
            by_grantee: dict[str, list[ApprovalRequest]] = defaultdict(list)
            for r in after:
                by_grantee[r.requester_key].append(r)
            for grantee in by_grantee:
                records.update((g.grant_id, g) for g in self._records.list_for(grantee))
        shown = {r.request_id: standing_of(r, records.get(r.request_id)) for r in after}
        return {rid: s for rid, s in shown.items() if s is not None}
