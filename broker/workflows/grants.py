"""Just-in-time grant: the same approval wait, then an active grant that a durable timer ends at
its expiry (or a "revoke" event ends early), every step journaled.

    grant_orchestrator(request)
      -> approval_notify, wait_for_decisions, approval_conclude   (as for commands)
      -> grant_activate -> expires_at                              (active: the execute path honours it)
      -> timer(expires_at)  |  event "revoke"
      -> grant_end                                                 (revoked)
"""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from broker.runtime import get_broker
from broker.workflows.wait import REVOKE_EVENT, event_payload, parse_deadline, wait_for_approval

bp = df.Blueprint()


@bp.orchestration_trigger(context_name="context")
def grant_orchestrator(context: df.DurableOrchestrationContext) -> Any:
    params = context.get_input()
    request_id = params["request_id"]
    status = yield from wait_for_approval(context, params)
    if status != "approved":
        return status
    # The activity fixes the expiry when the grant really opens (the execute path checks it against
    # the same clock); its answer is in the history, so every replay sees the same moment.
    activated = yield context.call_activity("grant_activate", {"request_id": request_id,
                                                               "duration_seconds": int(params["duration_seconds"])})
    if activated.get("status") != "active":
        return activated.get("status", "failed")
    expires_at = parse_deadline(activated["expires_at"])
    context.set_custom_status({"status": "active", "expires_at": expires_at.isoformat()})
    timer = context.create_timer(expires_at)
    revoke = context.wait_for_external_event(REVOKE_EVENT)
    winner = yield context.task_any([timer, revoke])
    if winner is timer:
        ending = {"request_id": request_id, "how": "expired", "by": {"id": "timer", "name": "expiry"}}
    else:
        timer.cancel()
        by = event_payload(revoke.result)
        ending = {"request_id": request_id, "how": "revoked", "by": {"id": str(by.get("by", "")), "name": ""}}
    yield context.call_activity("grant_end", ending)
    context.set_custom_status({"status": "revoked"})
    return "revoked"



@bp.activity_trigger(input_name="payload", activity="grant_activate")
def grant_activate(payload: dict) -> dict[str, Any]:
    return get_broker().approvals.grants.activate(payload["request_id"], int(payload["duration_seconds"]))


@bp.activity_trigger(input_name="payload", activity="grant_end")
def grant_end(payload: dict) -> dict[str, Any]:
    return get_broker().approvals.grants.end(payload["request_id"], payload["how"], payload["by"])
