"""What the execute service needs from the rest of the broker, declared here so it depends on
nothing it does not own: active grants, a place to hold a command for people, and a way to start
the workflow that waits for them (Durable Functions, behind the adapter that holds its client)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from broker.execute.outcome import ApprovalNeeded, Held
from broker.execute.request import CallContext
from broker.policy import Grant
from broker.problems import BrokerError, Unavailable

GrantLookup = Callable[[str, str], Sequence[Grant]]
"""(principal key, target name) -> the caller's active grants on that target."""


class ApprovalDesk(Protocol):
    """Holds commands for approvers (``broker/approvals``)."""

    def hold(self, needed: ApprovalNeeded, ctx: CallContext) -> Held:
        """Persist the exact command and journal ``execute.pending``; an open request for the same
        command (or idempotency key) comes back ``resubmitted`` instead of a second one."""

    def abandon(self, request_id: str, error: BrokerError) -> None:
        """The workflow could not start: the request ends as failed; nothing will run."""


class WorkflowStarter(Protocol):
    """Starts the orchestration that waits for the approvers (instance id = request id)."""

    def start(self, orchestrator: str, request_id: str, payload: dict[str, Any]) -> None:
        """Raises when the orchestration could not be scheduled."""


APPROVAL_ORCHESTRATOR = "approval_orchestrator"
GRANT_ORCHESTRATOR = "grant_orchestrator"
log = logging.getLogger(__name__)


def start_or_abandon(workflow: WorkflowStarter, desk: ApprovalDesk, orchestrator: str, held: Held,
                     **extra: Any) -> None:
    """Start the held request's workflow; when it cannot start, the request fails (journaled) and
    the caller is told 503 ``workflow_unavailable``: nothing is left waiting that nobody watches."""
    payload = {"request_id": held.request_id, "quorum": held.quorum, "deadline": held.expires_at, **extra}
    try:
        workflow.start(orchestrator, held.request_id, payload)
    except Exception as exc:
        log.warning("could not start %s for %s: %s", orchestrator, held.request_id, exc)
        error = Unavailable("The approval workflow could not start; nothing will run.", code="workflow_unavailable")
        desk.abandon(held.request_id, error)
        raise error from exc
