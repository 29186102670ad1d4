"""The journal record: one schema, versioned, for every event the broker records.

A record is written once and never updated (write-ahead: an ``execute.intent`` before the
command runs, an ``execute.outcome`` after). The writer wraps it in an envelope that places it
in a hash chain (see ``envelope.py``); this module only says what a record *contains*.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

SCHEMA_VERSION = 2


class Event:
    """The catalogue of event types: ``area.step``, the step saying how far things got.

    Adding an event type is one constant here. Storage, chaining, sealing, verify and export
    treat every event alike; ``replay`` renders the ``execute.*`` steps as a terminal session and
    any other event as one summary line (give it a renderer in ``replay.py`` if it deserves more).
    """

    EXECUTE_INTENT = "execute.intent"  # about to run: durable before the target sees anything
    EXECUTE_OUTCOME = "execute.outcome"  # ran (ok or error), with the masked response
    EXECUTE_DENIED = "execute.denied"  # refused before running (policy, unknown target, bad input)
    EXECUTE_PENDING = "execute.pending"  # waiting for a human approval
    EXECUTE_EXPLAINED = "execute.explained"  # the policy was asked about a command (explain); nothing ran
    TARGET_DESCRIBED = "target.described"  # a caller asked what a target holds (tables, columns; no values)
    EXECUTE_PREVIEW = "execute.preview"  # a server-side dry run shown to approvers (masked diff); nothing changed
    JOURNAL_READ = "journal.read"  # an auditor queried the journal (who watched the watchers)
    JOURNAL_COPIES_LOST = "journal.copies_lost"  # the sealer found rows whose write-once copy a crash lost
    CLASSIFY_INTENT = "classify.intent"  # a data classification run is about to sample a target
    CLASSIFY_OUTCOME = "classify.outcome"  # its counts (columns, types, hits/sampled), never a value

    # approvals: one request (a command or a grant) waiting for people
    APPROVAL_NOTIFIED = "approval.notified"  # the approvers were asked (mail / Logic App)
    APPROVAL_DECIDED = "approval.decided"  # one approver's verdict, accepted and counted
    APPROVAL_REFUSED = "approval.refused"  # a decision attempt refused (forged, replayed, self, late...)
    APPROVAL_APPROVED = "approval.approved"  # quorum reached
    APPROVAL_DENIED = "approval.denied"  # an approver denied: the request ends
    APPROVAL_EXPIRED = "approval.expired"  # nobody decided in time: default deny, nothing ran
    APPROVAL_FAILED = "approval.failed"  # the wait could not go on (e.g. nobody could be notified)
    APPROVAL_CANCELLED = "approval.cancelled"  # the requester (or an operator) withdrew it: nothing runs

    # just-in-time grants
    GRANT_REQUESTED = "grant.requested"  # waiting for approval
    GRANT_ACTIVATED = "grant.activated"  # approved: the execute path honours it until it ends
    GRANT_REVOKED = "grant.revoked"  # ended, at its expiry or early by an approver or the grantee
    GRANT_FAILED = "grant.failed"  # a step could not move the grant (its store refused): it stays as it was

    @classmethod
    def all(cls) -> frozenset[str]:
        return frozenset(v for k, v in vars(cls).items() if k.isupper() and isinstance(v, str))


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


@dataclass
class JournalRecord:
    """One journaled event. Field groups (all optional but ``event``/``request_id``/``principal``):

    - who: ``principal`` (tenant_id, object_id, app_id, display_name, kind, roles, groups), and the
      ``ticket`` the caller sent;
    - when (ISO 8601 UTC): ``received_at`` (the call arrived), ``started_at``/``ended_at`` (the target
      ran the command; on ``execute.outcome``), and ``time`` (record created);
    - where from: ``client`` (ip as seen, forwarded_for, user_agent, http_request_id); ``session_id``
      (no caller sends one today: the request id stands in, see ``session``);
    - what: ``target``, ``command`` (exact), ``command_digest``, ``classification`` (risk class),
      ``reason``;
    - why: ``decision`` (effect, rule_id, reason, policy_version, trace; ``approved_by`` for an
      approved run);
    - result: ``outcome`` (status, rows, bytes, truncated, masked counts by type, code, intent id,
      duration_ms) and ``response`` (the masked payload; stored inline when small, else in the blob).

    ``record_id`` is assigned by the writer (it names the record's place in its chain).
    """

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
    session_id: str = ""
    ticket: str = ""
    received_at: str = ""
    started_at: str = ""
    ended_at: str = ""
    time: str = field(default_factory=utc_now_iso)
    record_id: str = ""
    schema: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        """The fields as a dict (values shared, not copied: the writer normalises a copy anyway)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @property
    def session(self) -> str:
        """The session a replay groups this record under: the caller's, else its request."""
        return self.session_id or self.request_id

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JournalRecord:
        """Tolerant of older and newer schemas: unknown fields are dropped, missing ones default."""
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})
