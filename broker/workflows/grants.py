"""Just-in-time grant: the same approval wait, then an active grant that a durable timer ends at
its expiry (or a "revoke" event ends early), every step journaled.

    grant_orchestrator(request)
      -> approval_notify, wait_for_decisions, approval_conclude   (as for commands)
      -> grant_activate -> expires_at      (retried; active: the execute path honours it)
         | grant_abandon                    (it could not open after the retries: failed, nothing granted)
      -> timer(expires_at)  |  event "revoke"
      -> grant_end                          (retried; revoked)

Every grant step is one write of the grant's row (``broker/grants``) and idempotent, so a
re-delivered or retried activity finds its work done; the approval request stays approved.
"""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from broker.runtime import get_broker
from broker.workflows.wait import REVOKE_EVENT, event_payload, parse_deadline, wait_for_approval

bp = df.Blueprint()
GRANT_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=2000, max_number_of_attempts=3)
"""A grant step whose store (or journal) is briefly down is tried again; each step is idempotent."""


@bp.orchestration_trigger(context_name="context")
def grant_orchestrator(context: df.DurableOrchestrationContext) -> Any:
    params = context.get_input()
    request_id = params["request_id"]
    status = yield from wait_for_approval(context, params)
    if status != "approved":
        return status
    # The activity fixes the expiry when the grant really opens (the execute path checks it against
    # the same clock); its answer is in the history, so every replay sees the same moment.
    try:
        opening = {"request_id": request_id, "duration_seconds": int(params["duration_seconds"])}
        activated = yield context.call_activity_with_retry("grant_activate", GRANT_RETRY, opening)
    except Exception:
        # Still not open after the retries: the row fails (journaled), or answers active if it opened after all.
        activated = yield context.call_activity("grant_abandon", {"request_id": request_id,
                                                                  "code": "grant_not_opened"})
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
    yield context.call_activity_with_retry("grant_end", GRANT_RETRY, ending)
    context.set_custom_status({"status": "revoked"})
    return "revoked"



@bp.activity_trigger(input_name="payload", activity="grant_activate")
def grant_activate(payload: dict) -> dict[str, Any]:
    return get_broker().approvals.grants.activate(payload["request_id"], int(payload["duration_seconds"]))


@bp.activity_trigger(input_name="payload", activity="grant_abandon")
def grant_abandon(payload: dict) -> dict[str, Any]:
    return get_broker().approvals.grants.abandon(payload["request_id"], str(payload["code"]))


@bp.activity_trigger(input_name="payload", activity="grant_end")
def grant_end(payload: dict) -> dict[str, Any]:
    return get_broker().approvals.grants.end(payload["request_id"], payload["how"], payload["by"])
