"""Typed builders for journal records: one per event, from one ``Subject`` per call.

Why: records used to be assembled as dicts in a dozen places (``JournalRecord(**record)``), so a
field one producer filled another forgot (the ``ticket`` was lost on some paths) and nothing said
which fields an event carries. Now a call builds its ``Subject`` once, refines it as it gets
further (target resolved, command classified, decision made), and every record of that call is made
here from it. The ``outcome`` stays a small dict: it is the event's own payload, open by design.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from broker.journal.records import Event, JournalRecord


@dataclass(frozen=True)
class Subject:
    """Who asked for what, and how it was decided: the fields every record of one call shares."""

    request_id: str
    principal: dict[str, Any]
    client: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    ticket: str = ""
    received_at: str = ""
    target: str = ""
    command: dict[str, Any] = field(default_factory=dict)
    command_digest: str = ""
    classification: dict[str, Any] = field(default_factory=dict)
    decision: dict[str, Any] = field(default_factory=dict)

    def refined(self, **changes: Any) -> Subject:
        """The same call, further along (a target, a classification, a decision, another request id)."""
        return replace(self, **changes)

    def _record(self, event: str, outcome: dict[str, Any], *, response: Any = None, started_at: str = "",
                ended_at: str = "") -> JournalRecord:
        return JournalRecord(event=event, request_id=self.request_id, principal=self.principal,
                             target=self.target, command=self.command, command_digest=self.command_digest,
                             classification=self.classification, decision=self.decision, outcome=outcome,
                             response=response, client=self.client, reason=self.reason, ticket=self.ticket,
                             received_at=self.received_at, started_at=started_at, ended_at=ended_at)


def refused(code: str, **details: Any) -> dict[str, Any]:
    """The outcome of anything refused before it ran."""
    return {"status": "refused", "code": code, **details}


# --- execute.* ---
def execute_denied(subject: Subject, code: str, **details: Any) -> JournalRecord:
    """Refused before running: policy, bad input, over a limit, nobody to approve."""
    return subject._record(Event.EXECUTE_DENIED, refused(code, **details))


def execute_intent(subject: Subject) -> JournalRecord:
    """About to run; durable before the target sees the command."""
    return subject._record(Event.EXECUTE_INTENT, {})


def execute_outcome(subject: Subject, outcome: dict[str, Any], *, started_at: str, ended_at: str,
                    response: Any = None) -> JournalRecord:
    """It ran (``status`` ok or error), with the masked response; durable before the answer leaves."""
    return subject._record(Event.EXECUTE_OUTCOME, outcome, response=response, started_at=started_at,
                           ended_at=ended_at)


def execute_pending(subject: Subject, outcome: dict[str, Any]) -> JournalRecord:
    """Held for people (or answered with the request already held: ``resubmitted``)."""
    return subject._record(Event.EXECUTE_PENDING, outcome)


def execute_preview(subject: Subject, outcome: dict[str, Any], response: Any = None) -> JournalRecord:
    """A dry run or a measured impact shown to approvers; nothing changed."""
    return subject._record(Event.EXECUTE_PREVIEW, outcome, response=response)


def execute_explained(subject: Subject, outcome: dict[str, Any]) -> JournalRecord:
    """The policy was asked about a command; nothing ran."""
    return subject._record(Event.EXECUTE_EXPLAINED, outcome)


# --- discovery, auditing, classification ---
def target_described(subject: Subject, outcome: dict[str, Any]) -> JournalRecord:
    return subject._record(Event.TARGET_DESCRIBED, outcome)


def journal_read(subject: Subject, outcome: dict[str, Any]) -> JournalRecord:
    """An auditor read the journal (``subject.command`` holds the query)."""
    return subject._record(Event.JOURNAL_READ, outcome)


def journal_copies_lost(request_id: str, lost: list[dict[str, str]], *, start: str, cutoff: str) -> JournalRecord:
    """Rows the sealer found without their write-once copy (a host killed with copies queued), by
    record id, hash and append time *as found*: verify then names them as lost in a crash, and a
    row edited afterwards no longer matches what this record says."""
    subject = Subject(request_id=request_id, principal={"kind": "broker", "display_name": "journal sealer"})
    return subject._record(Event.JOURNAL_COPIES_LOST, {"status": "recorded", "start": start, "cutoff": cutoff,
                                                       "rows": len(lost), "lost": lost})


def classify_intent(subject: Subject) -> JournalRecord:
    return subject._record(Event.CLASSIFY_INTENT, {})


def classify_outcome(subject: Subject, outcome: dict[str, Any]) -> JournalRecord:
    return subject._record(Event.CLASSIFY_OUTCOME, outcome)


# --- approvals and grants: one family each, the step named by the event ---
APPROVAL_EVENTS = frozenset({Event.APPROVAL_NOTIFIED, Event.APPROVAL_DECIDED, Event.APPROVAL_REFUSED,
                             Event.APPROVAL_APPROVED, Event.APPROVAL_DENIED, Event.APPROVAL_EXPIRED,
                             Event.APPROVAL_FAILED, Event.APPROVAL_CANCELLED})
GRANT_EVENTS = frozenset({Event.GRANT_REQUESTED, Event.GRANT_ACTIVATED, Event.GRANT_REVOKED, Event.GRANT_FAILED})


def approval_step(event: str, subject: Subject, outcome: dict[str, Any]) -> JournalRecord:
    """One step of an approval request's life (``approval.*``)."""
    if event not in APPROVAL_EVENTS:
        raise ValueError(f"{event} is not an approval event")
    return subject._record(event, outcome)


def grant_step(event: str, subject: Subject, outcome: dict[str, Any]) -> JournalRecord:
    """One step of a just-in-time grant's life (``grant.*``)."""
    if event not in GRANT_EVENTS:
        raise ValueError(f"{event} is not a grant event")
    return subject._record(event, outcome)
