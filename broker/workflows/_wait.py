"""The wait shared by both orchestrators: decisions raced against the deadline.

Quorum counts distinct approvers; any single denial ends the wait; the deadline ends it as
expired (default deny). The HTTP layer already refuses duplicates and self-approval; the count
here is by approver key again, so a re-delivered event cannot count twice.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from datetime import UTC, datetime
from typing import Any

from azure.durable_functions import DurableOrchestrationContext, RetryOptions

DECISION_EVENT = "decision"
REVOKE_EVENT = "revoke"
NOTIFY_RETRY = RetryOptions(first_retry_interval_in_milliseconds=2000, max_number_of_attempts=3)


def wait_for_decisions(context: DurableOrchestrationContext, quorum: int,
                       deadline: datetime) -> Generator[Any, Any, dict[str, Any]]:
    """``yield from`` this: returns {"status": approved|denied|expired, "approvals": [...], ...}."""
    timer = context.create_timer(deadline)
    approvals: dict[str, dict[str, Any]] = {}
    while True:
        context.set_custom_status({"status": "pending", "approvals": len(approvals), "quorum": quorum})
        event = context.wait_for_external_event(DECISION_EVENT)
        winner = yield context.task_any([event, timer])
        if winner is timer:
            return {"status": "expired", "approvals": list(approvals.values())}
        decision = event_payload(winner.result)
        approver = decision.get("approver")
        if not isinstance(approver, str) or decision.get("verdict") not in ("approve", "deny"):
            continue  # not a decision the HTTP layer would send: ignore, keep waiting
        entry = {"approver": approver, "name": str(decision.get("name", "")), "via": str(decision.get("via", ""))}
        if decision["verdict"] == "deny":
            timer.cancel()
            return {"status": "denied", "approvals": list(approvals.values()), "denied_by": entry}
        approvals.setdefault(approver, entry)
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
