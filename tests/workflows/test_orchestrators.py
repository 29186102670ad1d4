"""The orchestrators, replayed through the Durable Functions SDK's own entry point with histories
built here, episode by episode, as the host would feed them."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from broker.workflows.wait import decision_event as ev
from tests.workflows.history import START, History, actions, replay

APPROVAL = "approval_orchestrator"
GRANT = "grant_orchestrator"
DEADLINE = START + timedelta(minutes=15)
NOTIFIED = {"sent": 2, "status": "pending", "approvers": ["t/ada", "t/bo"]}


def approve(who: str, name: str = "") -> dict:
    return {"approver": who, "name": name or who, "verdict": "approve", "via": "link"}


def deny(who: str) -> dict:
    return {"approver": who, "name": who, "verdict": "deny", "via": "link"}


def activity_calls(state: dict) -> list[tuple[str, object]]:
    return [(a["functionName"], json.loads(a["input"])) for a in actions(state) if "functionName" in a]


def waiting(quorum: int = 1, kind: str = APPROVAL, **extra: object) -> History:
    """A history up to the wait: notified, deadline timer created (task ids 0 and 1)."""
    payload = {"request_id": "req-1", "quorum": quorum, "deadline": DEADLINE.isoformat(), **extra}
    h = History(kind, payload)
    h.scheduled(0, "approval_notify", "req-1").episode().later(1).completed(0, NOTIFIED)
    return h.timer_created(1, DEADLINE)


def test_first_episode_only_notifies():
    state = replay(APPROVAL, History(APPROVAL, {"request_id": "req-1", "quorum": 1,
                                                "deadline": DEADLINE.isoformat()}))
    assert not state["isDone"]
    assert activity_calls(state) == [("approval_notify", "req-1")]


def test_waits_for_a_decision_against_the_deadline_timer():
    h = History(APPROVAL, {"request_id": "req-1", "quorum": 1, "deadline": DEADLINE.isoformat()})
    h.scheduled(0, "approval_notify", "req-1").episode().completed(0, NOTIFIED)
    state = replay(APPROVAL, h)
    kinds = [a.get("actionType") for a in actions(state)]
    for who in ("t/ada", "t/bo"):  # one wait per approver
        assert {"actionType": 6, "externalEventName": ev(who), "reason": "ExternalEvent"} in actions(state)
    timers = [a for a in actions(state) if a.get("actionType") == 5]
    assert timers == [{"actionType": 5, "fireAt": "2025-01-01T12:15:00.000000Z", "isCanceled": False}]
    assert 11 in kinds  # WhenAny: the decision raced against the timer
    assert state["customStatus"] == {"status": "pending", "approvals": 0, "quorum": 1}


def test_approved_command_runs_once_then_done():
    h = waiting().episode().later(30).raised(ev("t/ada"), approve("t/ada"))
    state = replay(APPROVAL, h)
    assert activity_calls(state)[-1] == ("approval_conclude", {
        "request_id": "req-1", "status": "approved", "approvals": [{"approver": "t/ada", "name": "t/ada",
                                                                    "via": "link"}]})
    assert next(a for a in actions(state) if a.get("actionType") == 5)["isCanceled"] is True
    h.scheduled(2, "approval_conclude").episode().completed(2, {"status": "approved"})
    state = replay(APPROVAL, h)
    assert activity_calls(state)[-1] == ("approval_run", "req-1")
    h.scheduled(3, "approval_run", "req-1").episode().completed(3, {"status": "done", "record_id": "x"})
    state = replay(APPROVAL, h)
    assert state["isDone"] and state["output"] == "done"
    assert [name for name, _ in activity_calls(state)].count("approval_run") == 1


def test_a_run_activity_that_dies_is_asked_once_more_to_conclude_never_rerun():
    """On Azure an activity can die (functionTimeout, a worker crash): the orchestrator asks the
    run activity again, which finds the request "running" and concludes it failed, not runs it."""
    h = waiting().episode().later(30).raised(ev("t/ada"), approve("t/ada"))
    h.scheduled(2, "approval_conclude").episode().completed(2, {"status": "approved"})
    h.scheduled(3, "approval_run", "req-1").episode().failed(3, "Timeout value of 00:05:00 was exceeded")
    state = replay(APPROVAL, h)
    assert not state["isDone"]
    assert activity_calls(state)[-2:] == [("approval_run", "req-1"), ("approval_run", "req-1")]
    h.scheduled(4, "approval_run", "req-1").episode().completed(4, {"status": "failed", "code": "interrupted"})
    state = replay(APPROVAL, h)
    assert state["isDone"] and state["output"] == "failed"


def test_a_denial_ends_it_and_nothing_runs():
    h = waiting().episode().raised(ev("t/bo"), deny("t/bo"))
    state = replay(APPROVAL, h)
    assert activity_calls(state)[-1][1]["status"] == "denied"
    assert activity_calls(state)[-1][1]["denied_by"]["approver"] == "t/bo"
    h.scheduled(2, "approval_conclude").episode().completed(2, {"status": "denied"})
    state = replay(APPROVAL, h)
    assert state["isDone"] and state["output"] == "denied"
    assert "approval_run" not in [name for name, _ in activity_calls(state)]


def test_timeout_expires_and_nothing_runs():
    h = waiting().episode().at(DEADLINE).timer_fired(1, DEADLINE)
    state = replay(APPROVAL, h)
    assert activity_calls(state)[-1] == ("approval_conclude", {"request_id": "req-1", "status": "expired",
                                                               "approvals": []})
    h.scheduled(2, "approval_conclude").episode().completed(2, {"status": "expired"})
    state = replay(APPROVAL, h)
    assert state["isDone"] and state["output"] == "expired"
    assert "approval_run" not in [name for name, _ in activity_calls(state)]


def test_quorum_counts_distinct_approvers():
    h = waiting(quorum=2).episode().raised(ev("t/ada"), approve("t/ada"))
    state = replay(APPROVAL, h)
    assert not state["isDone"]
    assert "approval_conclude" not in [n for n, _ in activity_calls(state)]
    assert state["customStatus"]["approvals"] == 1
    h.episode().raised(ev("t/ada"), approve("t/ada"))  # the same approver again does not count
    state = replay(APPROVAL, h)
    assert "approval_conclude" not in [n for n, _ in activity_calls(state)]
    assert state["customStatus"]["approvals"] == 1
    h.episode().raised(ev("t/bo"), approve("t/bo"))
    state = replay(APPROVAL, h)
    conclude = activity_calls(state)[-1]
    assert conclude[0] == "approval_conclude" and conclude[1]["status"] == "approved"
    assert [a["approver"] for a in conclude[1]["approvals"]] == ["t/ada", "t/bo"]


def test_one_denial_beats_earlier_approvals():
    h = waiting(quorum=2).episode().raised(ev("t/ada"), approve("t/ada")).episode().raised(ev("t/bo"), deny("t/bo"))
    state = replay(APPROVAL, h)
    assert activity_calls(state)[-1][1]["status"] == "denied"


def test_decisions_as_the_python_client_sends_them():
    """``raise_event`` JSON-encodes the data before posting it: the history holds a JSON string."""
    h = waiting().episode().raised(ev("t/ada"), json.dumps(approve("t/ada")))
    state = replay(APPROVAL, h)
    assert activity_calls(state)[-1][1]["status"] == "approved"


def test_a_decision_that_arrives_before_the_wait_counts_once():
    """An approver can answer while the mails are still going out (the event precedes the wait)."""
    h = History(APPROVAL, {"request_id": "req-1", "quorum": 2, "deadline": DEADLINE.isoformat()})
    h.scheduled(0, "approval_notify", "req-1").episode().raised(ev("t/ada"), approve("t/ada"))
    h.episode().completed(0, NOTIFIED)
    state = replay(APPROVAL, h)
    assert state["customStatus"]["approvals"] == 1 and not state["isDone"]
    h.timer_created(1, DEADLINE).episode().raised(ev("t/ada"), approve("t/ada"))  # re-delivered
    state = replay(APPROVAL, h)
    assert state["customStatus"]["approvals"] == 1
    assert "approval_conclude" not in [n for n, _ in activity_calls(state)]
    h.episode().raised(ev("t/bo"), approve("t/bo"))
    state = replay(APPROVAL, h)
    assert activity_calls(state)[-1][1]["status"] == "approved"


@pytest.mark.parametrize("second", ["approve", "deny"])
def test_two_decisions_that_arrive_before_the_wait_are_both_counted(second):
    """Both approvers answer while the mails are still going out: both events precede the waits.
    Each must be seen once; a quorum of 2 is reached (or the denial ends it) without waiting."""
    h = History(APPROVAL, {"request_id": "req-1", "quorum": 2, "deadline": DEADLINE.isoformat()})
    h.scheduled(0, "approval_notify", "req-1").episode().raised(ev("t/ada"), approve("t/ada"))
    h.raised(ev("t/bo"), approve("t/bo") if second == "approve" else deny("t/bo"))
    h.episode().completed(0, NOTIFIED)
    state = replay(APPROVAL, h)
    conclude = activity_calls(state)[-1]
    assert conclude[0] == "approval_conclude", state
    if second == "approve":
        assert conclude[1]["status"] == "approved"
        assert sorted(a["approver"] for a in conclude[1]["approvals"]) == ["t/ada", "t/bo"]
    else:
        assert conclude[1]["status"] == "denied" and conclude[1]["denied_by"]["approver"] == "t/bo"


def test_two_early_decisions_in_separate_episodes_before_the_wait():
    h = History(APPROVAL, {"request_id": "req-1", "quorum": 2, "deadline": DEADLINE.isoformat()})
    h.scheduled(0, "approval_notify", "req-1").episode().raised(ev("t/bo"), approve("t/bo"))
    h.episode().raised(ev("t/ada"), approve("t/ada"))
    h.episode().completed(0, NOTIFIED)
    state = replay(APPROVAL, h)
    assert activity_calls(state)[-1][0] == "approval_conclude", state
    assert activity_calls(state)[-1][1]["status"] == "approved"


def test_an_approver_outside_the_notified_list_is_not_waited_for():
    state = replay(APPROVAL, waiting().episode().raised(ev("t/mallory"), approve("t/mallory")))
    assert "approval_conclude" not in [n for n, _ in activity_calls(state)]


def test_events_that_arrive_in_one_batch_are_all_seen():
    h = waiting(quorum=2).episode().raised(ev("t/ada"), approve("t/ada")).raised(ev("t/bo"), approve("t/bo"))
    state = replay(APPROVAL, h)
    assert activity_calls(state)[-1][1]["status"] == "approved"


@pytest.mark.parametrize("event", [{"approver": "t/ada"}, {"approver": "t/ada", "verdict": "maybe"}, "approve",
                                   None, "[1, 2]", "{not json"])
def test_malformed_decisions_are_ignored(event):
    state = replay(APPROVAL, waiting().episode().raised(ev("t/ada"), event))
    assert not state["isDone"]
    assert "approval_conclude" not in [n for n, _ in activity_calls(state)]


def test_notify_failing_after_its_retries_ends_the_request_as_failed():
    h = History(APPROVAL, {"request_id": "req-1", "quorum": 1, "deadline": DEADLINE.isoformat()})
    h.scheduled(0, "approval_notify", "req-1").episode().failed(0, "smtp down")
    task = 1
    for _ in range(2):  # two retries: a retry timer, then the next attempt
        fire = h.now + timedelta(seconds=2)
        h.timer_created(task, fire).episode().at(fire).timer_fired(task, fire)
        h.scheduled(task + 1, "approval_notify", "req-1").episode().failed(task + 1, "smtp down")
        task += 2
    fire = h.now + timedelta(seconds=2)  # DTFx waits one more retry interval before giving up
    h.timer_created(task, fire).episode().at(fire).timer_fired(task, fire)
    state = replay(APPROVAL, h)
    assert activity_calls(state)[-1] == ("approval_conclude", {"request_id": "req-1", "status": "failed",
                                                               "error": "notify_failed"})


# --- grants ---

EXPIRES = START + timedelta(minutes=40)


def approved_grant(duration: int = 1800) -> History:
    h = waiting(kind=GRANT, duration_seconds=duration).episode().later(60).raised(ev("t/ada"), approve("t/ada"))
    return h.scheduled(2, "approval_conclude").episode().completed(2, {"status": "approved"})


def test_grant_activates_for_its_duration():
    state = replay(GRANT, approved_grant(1800))
    assert activity_calls(state)[-1] == ("grant_activate", {"request_id": "req-1", "duration_seconds": 1800})


def test_grant_timer_ends_it_at_the_expiry_the_activation_fixed():
    h = approved_grant(1800)
    h.scheduled(3, "grant_activate").episode().completed(3, {"status": "active", "expires_at": EXPIRES.isoformat()})
    state = replay(GRANT, h)
    timers = [a for a in actions(state) if a.get("actionType") == 5]
    assert timers[-1]["fireAt"] == EXPIRES.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert {"actionType": 6, "externalEventName": "revoke", "reason": "ExternalEvent"} in actions(state)
    assert state["customStatus"]["status"] == "active"
    h.timer_created(4, EXPIRES).episode().at(EXPIRES).timer_fired(4, EXPIRES)
    state = replay(GRANT, h)
    assert activity_calls(state)[-1] == ("grant_end", {"request_id": "req-1", "how": "expired",
                                                       "by": {"id": "timer", "name": "expiry"}})
    h.scheduled(5, "grant_end").episode().completed(5, {"status": "revoked"})
    state = replay(GRANT, h)
    assert state["isDone"] and state["output"] == "revoked"


def test_grant_revoked_early_cancels_the_timer():
    h = approved_grant(3600)
    h.scheduled(3, "grant_activate").episode().completed(3, {"status": "active", "expires_at": EXPIRES.isoformat()})
    h.timer_created(4, EXPIRES).episode().later(120).raised("revoke", json.dumps({"by": "t/bo"}))
    state = replay(GRANT, h)
    assert activity_calls(state)[-1] == ("grant_end", {"request_id": "req-1", "how": "revoked",
                                                       "by": {"id": "t/bo", "name": ""}})
    assert [a for a in actions(state) if a.get("actionType") == 5][-1]["isCanceled"] is True


def test_a_grant_that_could_not_open_ends_there():
    h = approved_grant(600)
    h.scheduled(3, "grant_activate").episode().completed(3, {"status": "gone"})
    state = replay(GRANT, h)
    assert state["isDone"] and state["output"] == "gone"


def _activation_failing_after_its_retries() -> tuple[History, int]:
    h = approved_grant(600)
    h.scheduled(3, "grant_activate").episode().failed(3, "grants_unavailable")
    task = 4
    for _ in range(2):  # two retries: a retry timer, then the next attempt
        fire = h.now + timedelta(seconds=2)
        h.timer_created(task, fire).episode().at(fire).timer_fired(task, fire)
        h.scheduled(task + 1, "grant_activate").episode().failed(task + 1, "grants_unavailable")
        task += 2
    fire = h.now + timedelta(seconds=2)
    return h.timer_created(task, fire).episode().at(fire).timer_fired(task, fire), task + 1


def test_a_failed_activation_is_retried_then_the_grant_fails_instead_of_hanging():
    """grant_activate is idempotent, so it is retried; when it still cannot open the grant, the grant
    row fails (grant_abandon) instead of leaving a request approved and a grant pending forever."""
    h = approved_grant(600)
    h.scheduled(3, "grant_activate").episode().failed(3, "grants_unavailable")
    state = replay(GRANT, h)
    assert not state["isDone"] and "grant_abandon" not in [n for n, _ in activity_calls(state)]
    h, task = _activation_failing_after_its_retries()
    state = replay(GRANT, h)
    assert activity_calls(state)[-1] == ("grant_abandon", {"request_id": "req-1", "code": "grant_not_opened"})
    h.scheduled(task, "grant_abandon").episode().completed(task, {"status": "failed"})
    state = replay(GRANT, h)
    assert state["isDone"] and state["output"] == "failed"


def test_a_grant_that_opened_after_all_still_gets_its_timer():
    """The last attempt opened the row but its answer was lost: grant_abandon says active, the timer runs."""
    h, task = _activation_failing_after_its_retries()
    h.scheduled(task, "grant_abandon").episode().completed(task, {"status": "active",
                                                                   "expires_at": EXPIRES.isoformat()})
    state = replay(GRANT, h)
    assert not state["isDone"] and state["customStatus"]["status"] == "active"
    assert [a for a in actions(state) if a.get("actionType") == 5][-1]["fireAt"] == EXPIRES.strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")


def test_denied_grant_never_activates():
    h = waiting(kind=GRANT, duration_seconds=600).episode().raised(ev("t/bo"), deny("t/bo"))
    h.scheduled(2, "approval_conclude").episode().completed(2, {"status": "denied"})
    state = replay(GRANT, h)
    assert state["isDone"] and state["output"] == "denied"
    assert "grant_activate" not in [n for n, _ in activity_calls(state)]


def test_a_refused_dry_run_ends_the_request_as_failed_without_waiting():
    """approval_notify reports the dry run refused: nobody is asked to decide blind."""
    h = History(APPROVAL, {"request_id": "req-1", "quorum": 1, "deadline": DEADLINE.isoformat()})
    h.scheduled(0, "approval_notify", "req-1").episode().completed(0, {"sent": 0, "status": "failed",
                                                                        "error": "preview_failed", "approvers": []})
    state = replay(APPROVAL, h)
    assert activity_calls(state)[-1] == ("approval_conclude", {"request_id": "req-1", "status": "failed",
                                                               "error": "preview_failed"})
    assert not [a for a in actions(state) if a.get("actionType") == 5]  # no deadline timer: no wait at all


def test_a_cancel_ends_the_wait_at_once_and_cancels_the_deadline_timer():
    """DTFx keeps an instance Running while a timer it created is neither fired nor cancelled."""
    h = waiting().episode().later(10).raised("cancel", json.dumps({"by": "t/devin"}))
    state = replay(APPROVAL, h)
    assert activity_calls(state)[-1] == ("approval_conclude", {"request_id": "req-1", "status": "cancelled",
                                                               "approvals": []})
    assert next(a for a in actions(state) if a.get("actionType") == 5)["isCanceled"] is True
    h.scheduled(2, "approval_conclude").episode().completed(2, {"status": "cancelled"})
    state = replay(APPROVAL, h)
    assert state["isDone"] and state["output"] == "cancelled"
    assert "approval_run" not in [name for name, _ in activity_calls(state)]


def test_an_approval_that_lost_the_race_to_a_cancel_runs_nothing():
    """The approver's event reached the orchestrator, but the store had the request cancelled first:
    the conclusion the store gives wins."""
    h = waiting().episode().raised(ev("t/ada"), approve("t/ada"))
    h.scheduled(2, "approval_conclude").episode().completed(2, {"status": "cancelled"})
    state = replay(APPROVAL, h)
    assert state["isDone"] and state["output"] == "cancelled"
    assert "approval_run" not in [name for name, _ in activity_calls(state)]


def test_a_cancelled_grant_request_never_activates():
    h = waiting(kind=GRANT, duration_seconds=600).episode().raised("cancel", json.dumps({"by": "t/devin"}))
    h.scheduled(2, "approval_conclude").episode().completed(2, {"status": "cancelled"})
    state = replay(GRANT, h)
    assert state["isDone"] and state["output"] == "cancelled"
    assert "grant_activate" not in [name for name, _ in activity_calls(state)]
