"""One contract for the approval store, run on the Table Storage adapter (Azurite) and on the
in-memory port the fast domain tests use: if the two ever differ, this fails on one of them."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from broker.approvals.requests import ApprovalRequest, DecisionRow
from broker.problems import BrokerError
from tests.approvals.conftest import ADA, BO, REQUESTER, held_request


def request_like(template: ApprovalRequest, **changes: object) -> ApprovalRequest:
    return replace(template, request_id=str(uuid.uuid4()), etag="", **changes)


def refused(fn, *args, **kwargs) -> tuple[int, str, dict]:
    with pytest.raises(BrokerError) as caught:
        fn(*args, **kwargs)
    return caught.value.status, caught.value.code, caught.value.extra


def test_a_request_comes_back_as_stored_and_only_once(parts):
    request = held_request(parts)
    stored = parts.store.get(request.request_id)
    assert (stored.status, stored.command, stored.requirement, stored.expires_at, stored.reason) == (
        "pending", request.command, request.requirement, request.expires_at, request.reason)
    assert stored.etag
    assert refused(parts.store.create, request)[:2] == (409, "duplicate_request")
    assert refused(parts.store.get, str(uuid.uuid4()))[:2] == (404, "not_found")
    assert parts.store.find(str(uuid.uuid4())) is None


def test_status_moves_only_from_the_states_allowed(parts):
    request = held_request(parts)
    moved = parts.store.transition(request.request_id, {"pending"}, "approved", approved_by=[{"approver": ADA.key}])
    assert (moved.status, moved.approved_by) == ("approved", [{"approver": ADA.key}])
    status, code, extra = refused(parts.store.transition, request.request_id, {"pending"}, "denied")
    assert (status, code, extra["request_status"]) == (409, "already_decided", "approved")
    expired = request_like(request)
    parts.store.create(expired)
    parts.store.transition(expired.request_id, {"pending"}, "expired")
    assert refused(parts.store.transition, expired.request_id, {"pending"}, "approved")[:2] == (410, "expired")


def test_each_approver_decides_once_and_decisions_come_in_order(parts):
    request = held_request(parts)
    rid = request.request_id
    later = DecisionRow(BO.key, BO.name, "deny", "link", "2026-01-01T10:00:02.000+00:00", "no")
    first = DecisionRow(ADA.key, ADA.name, "approve", "entra", "2026-01-01T10:00:01.000+00:00")
    assert parts.store.add_decision(rid, later) and parts.store.add_decision(rid, first)
    assert not parts.store.add_decision(rid, replace(first, verdict="deny"))
    assert parts.store.decisions(rid) == [first, later]


def test_a_link_is_used_once_and_a_release_undoes_the_decision(parts):
    rid = held_request(parts).request_id
    assert parts.store.use_token(rid, "tok1", ADA.key) and not parts.store.use_token(rid, "tok1", ADA.key)
    assert parts.store.token_used(rid, "tok1") and not parts.store.token_used(rid, "tok2")
    parts.store.add_decision(rid, DecisionRow(ADA.key, ADA.name, "approve", "link", "2026-01-01T10:00:00+00:00"))
    parts.store.release(rid, "tok1", ADA.key)
    assert parts.store.decisions(rid) == [] and not parts.store.token_used(rid, "tok1")


def test_racing_decisions_of_one_approver_count_once(parts):
    rid = held_request(parts).request_id
    row = DecisionRow(ADA.key, ADA.name, "approve", "link", "2026-01-01T10:00:00+00:00")
    with ThreadPoolExecutor(8) as pool:
        won = list(pool.map(lambda _: parts.store.add_decision(rid, row), range(8)))
    assert won.count(True) == 1


def test_a_claim_points_at_one_request_and_moves_only_from_what_was_read(parts):
    first = held_request(parts)
    second = request_like(first)
    index = f"index_{uuid.uuid4().hex}"
    assert parts.store.claim(index, first) is None
    held = parts.store.claim(index, second)
    assert held is not None and held.request_id == first.request_id
    assert parts.store.take_over(index, held, second)
    assert not parts.store.take_over(index, held, first)  # read before the take-over: stale
    parts.store.release_claim(index, first.request_id)  # not its claim any more: stays
    assert parts.store.claim(index, first).request_id == second.request_id
    parts.store.release_claim(index, second.request_id)
    assert parts.store.claim(index, first) is None


def test_my_requests_newest_first_and_only_mine(parts):
    base = held_request(parts)
    now = datetime.now(UTC).replace(microsecond=0)
    older = request_like(base, created_at=now - timedelta(minutes=5))
    newer = request_like(base, created_at=now + timedelta(minutes=5))
    other = request_like(base, requester={**base.requester, "object_id": str(uuid.uuid4())})
    for r in (older, newer, other):
        parts.store.create(r)
    mine = [r.request_id for r in parts.store.mine(REQUESTER, 10)]
    assert mine[0] == newer.request_id and older.request_id in mine and other.request_id not in mine
    assert len(parts.store.mine(REQUESTER, 1)) == 1


def test_a_result_round_trips_and_a_missing_one_is_none(parts):
    rid = held_request(parts).request_id
    assert parts.store.load_result(rid) is None
    result = {"rows": [["a", 1, None]], "row_count": 1, "masked": {"email": 2}}
    parts.store.store_result(rid, result)
    assert parts.store.load_result(rid) == result


def test_a_command_too_large_for_a_row_is_refused(parts):
    with pytest.raises(BrokerError) as caught:
        held_request(parts, sql="SELECT '" + "x" * 600_000 + "'")
    assert caught.value.code == "command_too_large"


# --- grants ---
@pytest.fixture
def grant_store(parts):
    from azure.data.tables import TableClient

    from broker.grants import GrantStore
    from tests.memory import MemoryGrantStore

    if not parts.conn:
        return MemoryGrantStore()
    return GrantStore(TableClient.from_connection_string(parts.conn, f"grants{parts.suffix}"))


def grant_record(**changes: object):
    from broker.grants import GrantRecord

    return replace(GrantRecord(str(uuid.uuid4()), REQUESTER, "demo-postgres", "write", 1800, "INC-7"), **changes)


def test_a_grant_opens_once_and_is_honoured_only_while_active_and_unexpired(grant_store):
    now = datetime.now(UTC).replace(microsecond=0)
    record = grant_record()
    grant_store.create(record)
    assert refused(grant_store.create, record)[:2] == (409, "duplicate_request")
    assert grant_store.active(REQUESTER, "demo-postgres") == []  # pending is not a grant yet
    opened = grant_store.transition(REQUESTER, record.grant_id, {"pending"}, "active", activated_at=now,
                                    expires_at=now + timedelta(minutes=30))
    assert opened is not None and opened.status == "active"
    assert grant_store.transition(REQUESTER, record.grant_id, {"pending"}, "active") is None  # moved already
    assert [g.id for g in grant_store.active(REQUESTER, "demo-postgres")] == [record.grant_id]
    assert grant_store.active(REQUESTER, "other-db") == []
    assert grant_store.active(REQUESTER, "demo-postgres", now=now + timedelta(minutes=31)) == []
    grant_store.transition(REQUESTER, record.grant_id, {"active"}, "revoked", ended_at=now)
    assert grant_store.active(REQUESTER, "demo-postgres") == []
    assert refused(grant_store.get, REQUESTER, str(uuid.uuid4()))[:2] == (404, "not_found")


def test_my_grants_newest_first(grant_store):
    now = datetime.now(UTC).replace(microsecond=0)
    old, new = grant_record(requested_at=now - timedelta(hours=1)), grant_record(requested_at=now)
    other = grant_record(principal=f"{REQUESTER.split('/')[0]}/{uuid.uuid4()}")
    for r in (old, new, other):
        grant_store.create(r)
    assert [g.grant_id for g in grant_store.list_for(REQUESTER)][:2] == [new.grant_id, old.grant_id]
    assert other.grant_id not in [g.grant_id for g in grant_store.list_for(REQUESTER)]


def test_a_grant_opening_undone_clears_its_expiry_and_a_failed_one_keeps_why(grant_store):
    """The two moves the lifecycle's failure paths make: active back to pending with the expiry gone
    (the journal refused ``grant.activated``), and pending to failed with its error."""
    now = datetime.now(UTC).replace(microsecond=0)
    record = grant_record()
    grant_store.create(record)
    grant_store.transition(REQUESTER, record.grant_id, {"pending"}, "active", activated_at=now,
                           expires_at=now + timedelta(minutes=30))
    undone = grant_store.transition(REQUESTER, record.grant_id, {"active"}, "pending", activated_at=None,
                                    expires_at=None)
    assert undone is not None and (undone.status, undone.activated_at, undone.expires_at) == ("pending", None, None)
    assert grant_store.active(REQUESTER, "demo-postgres") == []
    error = {"code": "grant_not_opened", "detail": "x"}
    grant_store.transition(REQUESTER, record.grant_id, {"pending"}, "failed", ended_at=now, error=error)
    failed = grant_store.get(REQUESTER, record.grant_id)
    assert (failed.status, failed.error, failed.to_dict()["error"]) == ("failed", error, error)
    assert "error" not in grant_record().to_dict()  # GET /api/grants carries it only when there is one
