"""The journal record: one schema, versioned, for every event the broker records.

A record is written once and never updated (write-ahead: an ``execute.intent`` before the
command runs, an ``execute.outcome`` after). Its canonical JSON is what the Table row and the
immutable blob both hold, so the two can be compared byte for byte.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any

SCHEMA_VERSION = 1


class Event:
    """The catalogue of event types; a suffix says how the step ended."""

    EXECUTE_INTENT = "execute.intent"  # about to run: durable before the target sees anything
    EXECUTE_OUTCOME = "execute.outcome"  # ran (ok or error), with the masked response
    EXECUTE_DENIED = "execute.denied"  # refused before running (policy, unknown target, bad input)
    EXECUTE_PENDING = "execute.pending"  # waiting for a human approval
    EXECUTE_PREVIEW = "execute.preview"  # a server-side dry run shown to approvers (masked diff); nothing changed

    # approvals: one request (a command or a grant) waiting for people
    APPROVAL_NOTIFIED = "approval.notified"  # the approvers were asked (mail / Logic App)
    APPROVAL_DECIDED = "approval.decided"  # one approver's verdict, accepted and counted
    APPROVAL_REFUSED = "approval.refused"  # a decision attempt refused (forged, replayed, self, late...)
    APPROVAL_APPROVED = "approval.approved"  # quorum reached
    APPROVAL_DENIED = "approval.denied"  # an approver denied: the request ends
    APPROVAL_EXPIRED = "approval.expired"  # nobody decided in time: default deny, nothing ran
    APPROVAL_FAILED = "approval.failed"  # the wait could not go on (e.g. nobody could be notified)

    # just-in-time grants
    GRANT_REQUESTED = "grant.requested"  # waiting for approval
    GRANT_ACTIVATED = "grant.activated"  # approved: the execute path honours it until it ends
    GRANT_REVOKED = "grant.revoked"  # ended, at its expiry or early by an approver or the grantee


def new_record_id(now: float | None = None) -> str:
    """Time-sortable id: 12 hex digits of milliseconds, then 10 random hex digits."""
    millis = int((now if now is not None else time.time()) * 1000)
    return f"{millis:012x}{os.urandom(5).hex()}"


def record_day(record_id: str) -> date:
    """The UTC day encoded in a record id (raises ValueError for a malformed id)."""
    return datetime.fromtimestamp(int(record_id[:12], 16) / 1000, UTC).date()


@dataclass
class JournalRecord:
    event: str
    request_id: str
    principal: dict[str, Any]
    target: str = ""
    command: dict[str, Any] = field(default_factory=dict)
    command_digest: str = ""
    classification: dict[str, Any] = field(default_factory=dict)
    decision: dict[str, Any] = field(default_factory=dict)
    outcome: dict[str, Any] = field(default_factory=dict)
    response: Any = None
    client: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    record_id: str = field(default_factory=new_record_id)
    time: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="microseconds"))
    schema: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def canonical_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          default=str)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JournalRecord:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})
