"""Command approval: notify the approvers, wait for decisions against the deadline, then run the
exact approved command once, or record the denial / expiry (default deny: nothing runs).

    approval_orchestrator(request)
      -> approval_notify            (activity, retried: the engine's dry run / measured impact, kept
                                     with the request; then mail / Logic App)
      -> wait_for_decisions          (one event per approver, "decision_<id>", raced against the deadline)
      -> approval_conclude           (activity: status + journal)
      -> approval_run                (activity, once: execute + mask + journal + store the result)
"""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from broker.runtime import get_broker
from broker.workflows.wait import wait_for_approval

bp = df.Blueprint()


@bp.orchestration_trigger(context_name="context")
def approval_orchestrator(context: df.DurableOrchestrationContext) -> Any:
    """A pure generator: it is replayed from its history, so it does no I/O of its own."""
    params = context.get_input()
    status = yield from wait_for_approval(context, params)
    if status != "approved":
        return status
    context.set_custom_status({"status": "running"})
    try:
        ran = yield context.call_activity("approval_run", params["request_id"])
    except Exception:
        # The activity died (host timeout, worker crash): asking again never runs the command a
        # second time -- the request is already "running", so the second call concludes it failed.
        ran = yield context.call_activity("approval_run", params["request_id"])
    context.set_custom_status({"status": ran["status"]})
    return ran["status"]



@bp.activity_trigger(input_name="request_id", activity="approval_notify")
def approval_notify(request_id: str) -> dict[str, Any]:
    """Dry-run the held command for the approvers (kept with the request), then ask them."""
    broker = get_broker()
    return broker.approvals.approvals.notify(request_id, broker.execute)


@bp.activity_trigger(input_name="outcome", activity="approval_conclude")
def approval_conclude(outcome: dict) -> dict[str, Any]:
    broker = get_broker()
    concluded = broker.approvals.approvals.conclude(outcome["request_id"], outcome)
    request = broker.approvals.approvals.get(outcome["request_id"])
    if request.kind == "grant" and concluded["status"] in ("denied", "expired", "failed", "cancelled"):
        broker.approvals.grants.conclude_unapproved(request.request_id, concluded["status"])
    return concluded


@bp.activity_trigger(input_name="request_id", activity="approval_run")
def approval_run(request_id: str) -> dict[str, Any]:
    broker = get_broker()
    return broker.approvals.approvals.run(request_id, broker.execute)
