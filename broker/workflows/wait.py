"""The wait shared by both orchestrators: decisions raced against the deadline.

Quorum counts distinct approvers; any single denial ends the wait; the deadline ends it as
expired (default deny). The HTTP layer already refuses duplicates and self-approval; here each
approver has one wait, so a re-delivered event cannot count twice.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from datetime import UTC, datetime
from typing import Any

from azure.durable_functions import DurableOrchestrationContext, RetryOptions

REVOKE_EVENT = "revoke"
CANCEL_EVENT = "cancel"
"""Raised by ``DELETE /api/requests/{id}`` after the request moved to cancelled: the wait ends now."""
NOTIFY_RETRY = RetryOptions(first_retry_interval_in_milliseconds=2000, max_number_of_attempts=3)


def decision_event(approver: str) -> str:
    """Each approver's decision is its own event (``decision_<tenant>_<oid>``).

    One name per approver, waited on by one task for the whole wait, never a fresh wait for a
    name already seen: the Python SDK re-applies an event that arrived before its wait to every
    later wait of the same name, so a shared "decision" name would count an early decision
    again and again. A name per approver also makes "distinct approvers" structural.
    """
    return "decision_" + approver.replace("/", "_")


def wait_for_approval(context: DurableOrchestrationContext, params: dict[str, Any]) -> Generator[Any, Any, str]:
    """``yield from`` this: notify the approvers, wait for their decisions against the deadline,
    record the conclusion; returns approved | denied | expired | cancelled | failed. Both orchestrators
    start with it."""
    request_id = params["request_id"]
    try:
        notified = yield context.call_activity_with_retry("approval_notify", NOTIFY_RETRY, request_id)
    except Exception:
        yield context.call_activity("approval_conclude", {"request_id": request_id, "status": "failed",
                                                          "error": "notify_failed"})
        return "failed"
    if notified.get("status") == "failed":  # e.g. the dry run was refused: nobody decides blind
        yield context.call_activity("approval_conclude", {"request_id": request_id, "status": "failed",
                                                          "error": str(notified.get("error", "notify_failed"))})
        return "failed"
    # The quorum notify asked for: the policy may have raised it once the change's rows were measured
    # (an activity's result, so replay sees the same number; older histories lack it).
    quorum = int(notified.get("quorum") or params["quorum"])
    outcome = yield from wait_for_decisions(context, quorum, parse_deadline(params["deadline"]),
                                            list(notified.get("approvers", [])))
    context.set_custom_status({"status": outcome["status"]})
    concluded = yield context.call_activity("approval_conclude", {"request_id": request_id, **outcome})
    # The store has the last word: a request cancelled while an approval was on its way is cancelled.
    status = str((concluded or {}).get("status") or outcome["status"])
    if status != outcome["status"]:
        context.set_custom_status({"status": status})
    return status


def wait_for_decisions(context: DurableOrchestrationContext, quorum: int, deadline: datetime,
                       approvers: list[str]) -> Generator[Any, Any, dict[str, Any]]:
    """``yield from`` this: returns {"status": approved|denied|expired|cancelled, "approvals": [...], ...}."""
    timer = context.create_timer(deadline)
    waits = {approver: context.wait_for_external_event(decision_event(approver)) for approver in approvers}
    cancel = context.wait_for_external_event(CANCEL_EVENT)  # one wait for the whole wait (see decision_event)
    approvals: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()
    while True:
        context.set_custom_status({"status": "pending", "approvals": len(approvals), "quorum": quorum})
        # Waits not yet *handled*, not "not completed": decisions that arrived before the wait
        # complete their tasks at once, several of them in one go; each must still be read once.
        # ``task_any`` returns an already-completed task immediately, in list order (deterministic).
        open_waits = [task for approver, task in waits.items() if approver not in seen]
        winner = yield context.task_any([*open_waits, cancel, timer])
        if winner is timer:
            return {"status": "expired", "approvals": list(approvals.values())}
        if winner is cancel:
            timer.cancel()  # an uncancelled timer keeps the instance Running until the deadline
            return {"status": "cancelled", "approvals": list(approvals.values())}
        approver = next(a for a, task in waits.items() if task is winner)
        seen.add(approver)
        decision = event_payload(winner.result)
        if decision.get("verdict") not in ("approve", "deny"):
            continue  # not a decision the HTTP layer sends: this approver's wait is spent, keep waiting
        entry = {"approver": approver, "name": str(decision.get("name", "")), "via": str(decision.get("via", ""))}
        if decision["verdict"] == "deny":
            timer.cancel()
            return {"status": "denied", "approvals": list(approvals.values()), "denied_by": entry}
        approvals[approver] = entry
        if len(approvals) >= quorum:
            timer.cancel()
            return {"status": "approved", "approvals": list(approvals.values())}


def event_payload(value: Any) -> dict[str, Any]:
    """An event's data as a dict. ``DurableOrchestrationClient.raise_event`` serialises the data
    before posting it as JSON, so the orchestrator receives a JSON *string*; accept both."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


def parse_deadline(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)
