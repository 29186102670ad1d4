"""One state machine per grant: the approval request ends at approved, the grant's lifecycle lives in
the grant store alone, and what callers read (status, listing) is joined in one place
(``broker/grants/view.py``). Also: rows the old code wrote (a request row that says ``active`` or
``revoked``) still read right, and a step whose write fails leaves nothing half-done and says so in
the journal. Every test runs on the in-memory ports and on Azurite (``parts``)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from broker.grants import GrantService
from broker.grants.view import NEXT_STEPS
from broker.identity import Principal
from broker.journal.records import JournalRecord
from broker.problems import BrokerError, Unavailable
from tests.approvals.conftest import ADA, BO, CTX
from tests.approvals.test_grants import CATALOG, DEVIN, POLICY, body

APPROVED = {"status": "approved", "approvals": [{"approver": ADA.key, "name": "Ada Approver", "via": "link"}]}
BO_PRINCIPAL = Principal(DEVIN.tenant_id, BO.object_id, display_name="Bo")


class FlakyGrants:
    """The grant store, with its writes refused while ``down`` (as Table Storage answers when it is
    unreachable: the adapter's own 503). Reads still work, so the test can look at what stayed."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.down = False

    def transition(self, *args: Any, **kwargs: Any) -> Any:
        if self.down:
            raise Unavailable("The grant store cannot be written.", code="grants_unavailable")
        return self._inner.transition(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class FlakyJournal:
    """The journal, refusing one event type while ``refuse`` names it (``journal_unavailable``)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.refuse = ""

    def write(self, record: JournalRecord) -> str:
        if record.event == self.refuse:
            raise Unavailable("The journal cannot be written.", code="journal_unavailable")
        return self._inner.write(record)


def service(parts, store: Any = None, journal: Any = None) -> GrantService:
    return GrantService(catalog=CATALOG, policy=POLICY, store=store or parts.grant_store, approvals=parts.service,
                        directory=parts.directory, journal=journal or parts.journal)


def approved(parts, grants: GrantService) -> str:
    request = grants.request(DEVIN, body(), CTX)
    parts.service.conclude(request.request_id, APPROVED)
    return request.request_id


def shown(parts, request_id: str) -> dict[str, Any]:
    status = parts.service.status(request_id, DEVIN)
    listed = [r for r in parts.service.mine(DEVIN, 20) if r["request_id"] == request_id]
    assert [(r["status"], r["next_step"]) for r in listed] == [(status["status"], status["next_step"])]
    return status


def grant_events(parts, request_id: str) -> list[tuple[str, str, str]]:
    return [e for e in parts.events(request_id) if e[0].startswith("grant.")]


# --- one state machine: the request ends at approved, the grant row moves ---

def test_what_callers_see_is_the_grant_row_joined_to_the_approved_request(parts):
    grants = service(parts)
    rid = approved(parts, grants)
    status = shown(parts, rid)
    assert (status["status"], status["next_step"]) == ("approved", NEXT_STEPS["approved"])  # opening
    assert "expires_at" not in status["grant"]
    opened = grants.activate(rid, 1800)
    status = shown(parts, rid)
    assert (status["status"], status["grant"]["expires_at"]) == ("active", opened["expires_at"])
    assert status["grant"]["duration"] == "PT30M" and status["next_step"] == NEXT_STEPS["active"]
    assert "problem" not in status and "ended_at" not in status
    grants.revoke(rid, BO_PRINCIPAL)
    status = shown(parts, rid)
    assert status["status"] == "revoked" and status["next_step"] == NEXT_STEPS["revoked"]
    assert status["ended_by"] == {"how": "revoked", "id": BO_PRINCIPAL.key, "name": "Bo", "as": "approver"}
    assert datetime.fromisoformat(status["ended_at"]) <= datetime.now(UTC)
    assert status["grant"]["expires_at"] == opened["expires_at"]
    # the approval request never moved for the grant: it is approved, and holds no grant state
    row = parts.store.get(rid)
    assert (row.status, row.ended_at, row.ended_by, "expires_at" in row.grant) == ("approved", "", {}, False)


@pytest.mark.parametrize("how", ["denied", "expired", "cancelled"])
def test_an_approval_that_did_not_open_it_is_the_requests_own_status(parts, how):
    grants = service(parts)
    request = grants.request(DEVIN, body(), CTX)
    if how == "cancelled":
        parts.service.cancel(request.request_id, DEVIN)
    else:
        parts.service.conclude(request.request_id, {"status": how, "approvals": []})
    status = shown(parts, request.request_id)
    assert status["status"] == how and status["problem"]["code"] in ("request_denied", "expired", "request_cancelled")
    # before the grant row follows (a crash between the two steps of approval_conclude) and after it
    grants.conclude_unapproved(request.request_id, how)
    assert shown(parts, request.request_id)["status"] == how
    assert parts.grant_store.get(DEVIN.key, request.request_id).status == how
    assert grants.store.active(DEVIN.key, "demo-postgres") == []


def test_concurrent_activations_open_it_once_with_one_expiry(parts):
    """Durable delivers an activity at least once; two deliveries at the same moment agree."""
    grants = service(parts)
    rid = approved(parts, grants)
    answers: list[dict[str, Any]] = []
    threads = [threading.Thread(target=lambda: answers.append(grants.activate(rid, 1800))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({a["expires_at"] for a in answers}) == 1 and {a["status"] for a in answers} == {"active"}
    assert [e[0] for e in grant_events(parts, rid)].count("grant.activated") == 1


# --- rows the old code wrote: the request row itself says active / revoked ---

def _old_activation(parts, rid: str, grants: GrantService, *, row_moved: bool) -> str:
    """What the old ``activate`` wrote: the request row to ``active`` (with the expiry), then the grant
    row; ``row_moved=False`` is the old code stopped between its two writes."""
    held = parts.store.get(rid)
    expires_at = (datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=30)).isoformat()
    parts.store.transition(rid, {"approved"}, "active", grant={**held.grant, "expires_at": expires_at})
    if row_moved:
        grants.store.transition(DEVIN.key, rid, {"pending"}, "active", activated_at=datetime.now(UTC),
                                expires_at=datetime.fromisoformat(expires_at), approved_by=held.approved_by)
    return expires_at


def test_an_old_active_request_row_reads_active_and_ends_in_the_grant_row(parts):
    grants = service(parts)
    rid = approved(parts, grants)
    expires_at = _old_activation(parts, rid, grants, row_moved=True)
    status = shown(parts, rid)
    assert (status["status"], status["grant"]["expires_at"]) == ("active", expires_at)
    assert grants.activate(rid, 1800) == {"status": "active", "expires_at": expires_at}  # re-delivered after deploy
    assert grants.revoke(rid, DEVIN)["status"] == "revoked"  # the grantee may end it
    status = shown(parts, rid)
    assert status["status"] == "revoked" and status["ended_by"]["as"] == "grantee"
    assert parts.store.get(rid).status == "active"  # the old row is left as it was; the grant row decides
    assert grants.store.active(DEVIN.key, "demo-postgres") == []


def test_an_old_revoked_request_row_reads_revoked(parts):
    grants = service(parts)
    rid = approved(parts, grants)
    _old_activation(parts, rid, grants, row_moved=True)
    ended = datetime.now(UTC).isoformat(timespec="seconds")
    by = {"how": "expired", "id": "timer", "name": "expiry"}
    grants.store.transition(DEVIN.key, rid, {"active"}, "revoked", ended_at=datetime.fromisoformat(ended), ended_by=by)
    parts.store.transition(rid, {"active"}, "revoked", ended_at=ended, ended_by=by)  # the old end's second write
    status = shown(parts, rid)
    assert (status["status"], status["ended_at"], status["ended_by"]) == ("revoked", ended, by)
    with pytest.raises(BrokerError) as caught:
        grants.revoke(rid, DEVIN)
    assert (caught.value.code, caught.value.extra["request_status"]) == ("not_active", "revoked")


def test_the_old_codes_half_done_activation_is_not_shown_active_and_heals(parts):
    """Old code stopped between its writes: the request row said active, the grant row stayed pending (so
    the execute path never honoured it). It now reads approved, and the re-delivered activity opens it
    with the expiry the old code had fixed."""
    grants = service(parts)
    rid = approved(parts, grants)
    expires_at = _old_activation(parts, rid, grants, row_moved=False)
    assert shown(parts, rid)["status"] == "approved"
    assert grants.activate(rid, 60) == {"status": "active", "expires_at": expires_at}
    assert [g.id for g in grants.store.active(DEVIN.key, "demo-postgres")] == [rid]
    assert shown(parts, rid)["status"] == "active"


def test_the_old_codes_half_done_end_reads_revoked(parts):
    """Old end: grant row revoked, then the request row; stopped in between, the request said active
    forever. The grant row decides now."""
    grants = service(parts)
    rid = approved(parts, grants)
    _old_activation(parts, rid, grants, row_moved=True)
    grants.store.transition(DEVIN.key, rid, {"active"}, "revoked", ended_at=datetime.now(UTC),
                            ended_by={"how": "expired", "id": "timer", "name": "expiry"})
    assert shown(parts, rid)["status"] == "revoked"
    assert grants.end(rid, "expired", {"id": "timer", "name": "expiry"}) == {"status": "revoked", "already": True}


# --- a step whose write fails: nothing half-done, the journal says what happened ---

def test_an_activation_the_grant_store_refuses_changes_nothing_and_is_journaled(parts):
    flaky = FlakyGrants(parts.grant_store)
    grants = service(parts, store=flaky)
    rid = approved(parts, grants)
    flaky.down = True
    with pytest.raises(BrokerError) as caught:
        grants.activate(rid, 1800)
    assert caught.value.code == "grants_unavailable"
    assert parts.store.get(rid).status == "approved"  # the request did not move ...
    assert parts.grant_store.get(DEVIN.key, rid).status == "pending"  # ... nor the grant: no half state
    assert grants.store.active(DEVIN.key, "demo-postgres") == []
    assert shown(parts, rid)["status"] == "approved"  # never shown active while it is not honoured
    assert ("grant.failed", "pending", "grants_unavailable") in grant_events(parts, rid)
    assert "grant.activated" not in [e[0] for e in grant_events(parts, rid)]
    flaky.down = False  # the workflow's retry, once the store is back
    assert grants.activate(rid, 1800)["status"] == "active"
    assert [e[0] for e in grant_events(parts, rid)].count("grant.activated") == 1
    assert shown(parts, rid)["status"] == "active"


def test_an_activation_that_cannot_be_journaled_is_undone(parts):
    journal = FlakyJournal(parts.journal)
    grants = service(parts, journal=journal)
    rid = approved(parts, grants)
    journal.refuse = "grant.activated"
    with pytest.raises(BrokerError) as caught:
        grants.activate(rid, 1800)
    assert caught.value.code == "journal_unavailable"
    record = parts.grant_store.get(DEVIN.key, rid)
    assert (record.status, record.expires_at, record.activated_at) == ("pending", None, None)
    assert grants.store.active(DEVIN.key, "demo-postgres") == []
    journal.refuse = ""
    assert grants.activate(rid, 1800)["status"] == "active"
    assert [e[0] for e in grant_events(parts, rid)].count("grant.activated") == 1


def test_a_grant_that_never_opens_fails_instead_of_waiting_forever(parts):
    flaky = FlakyGrants(parts.grant_store)
    grants = service(parts, store=flaky)
    rid = approved(parts, grants)
    flaky.down = True
    for _ in range(3):  # the workflow's attempts
        with pytest.raises(BrokerError):
            grants.activate(rid, 1800)
    flaky.down = False
    assert grants.abandon(rid, "grant_not_opened") == {"status": "failed"}
    status = shown(parts, rid)
    assert (status["status"], status["error"]["code"], status["next_step"]) == (
        "failed", "grant_not_opened", NEXT_STEPS["failed"])
    problem = status["problem"]  # what the MCP wait_for_request returns as its error result
    assert (problem["code"], problem["status"], problem["error"]["code"]) == ("request_failed", 422,
                                                                              "grant_not_opened")
    assert problem["next_step"] == problem["remedy"] == NEXT_STEPS["failed"]
    assert ("grant.failed", "failed", "grant_not_opened") in grant_events(parts, rid)
    assert grants.activate(rid, 1800) == {"status": "gone"}  # a late attempt cannot open a failed grant
    assert grants.store.active(DEVIN.key, "demo-postgres") == []


def test_abandon_after_an_attempt_that_opened_it_after_all_answers_active(parts):
    grants = service(parts)
    rid = approved(parts, grants)
    opened = grants.activate(rid, 1800)
    assert grants.abandon(rid, "grant_not_opened") == opened
    assert shown(parts, rid)["status"] == "active"


def test_an_end_the_grant_store_refuses_leaves_it_active_and_is_journaled(parts):
    flaky = FlakyGrants(parts.grant_store)
    grants = service(parts, store=flaky)
    rid = approved(parts, grants)
    grants.activate(rid, 1800)
    flaky.down = True
    with pytest.raises(BrokerError):
        grants.end(rid, "expired", {"id": "timer", "name": "expiry"})
    assert shown(parts, rid)["status"] == "active"
    assert ("grant.failed", "active", "grants_unavailable") in grant_events(parts, rid)
    flaky.down = False
    assert grants.end(rid, "expired", {"id": "timer", "name": "expiry"}) == {"status": "revoked"}
    assert shown(parts, rid)["status"] == "revoked"


@pytest.mark.parametrize("status", ["pending", "denied", "expired", "cancelled", "failed"])
def test_only_an_approved_grant_request_opens(parts, status):
    grants = service(parts)
    request = grants.request(DEVIN, body(), CTX)
    if status == "cancelled":
        parts.service.cancel(request.request_id, DEVIN)
    elif status == "failed":
        parts.service.abandon(request.request_id, Unavailable("x", code="workflow_unavailable"))
    elif status != "pending":
        parts.service.conclude(request.request_id, {"status": status, "approvals": []})
    with pytest.raises(BrokerError) as caught:
        grants.activate(request.request_id, 1800)
    assert (caught.value.status, caught.value.extra["request_status"]) == (409, status)
    assert grants.store.active(DEVIN.key, "demo-postgres") == []
