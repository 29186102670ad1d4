"""The execute path (``service.py``): decide, journal the intent, run with the broker's credential,
mask, journal the outcome, answer, or hold the command for people through the approval port.

- ``request``: what the agent sends (``ExecuteBody``) and where the call came from (``CallContext``);
- ``outcome``: what comes back (``Done`` with an ``ExecuteResult``, ``Pending`` with a ``Held`` request);
- ``ports``: what the service needs from elsewhere (grants, an approval desk, a workflow starter);
- ``masking``: the current masker and the masking of every output shape.
"""

from broker.execute.masking import MaskerSource, mask_result
from broker.execute.outcome import (
    ApprovalNeeded,
    CommandPreview,
    Done,
    ExecuteResult,
    Held,
    Pending,
    Submitted,
    result_kind,
    truncation,
)
from broker.execute.ports import (
    APPROVAL_ORCHESTRATOR,
    GRANT_ORCHESTRATOR,
    ApprovalDesk,
    GrantLookup,
    WorkflowStarter,
    start_or_abandon,
)
from broker.execute.request import MAX_SQL_CHARS, CallContext, ExecuteBody
from broker.execute.service import ExecuteService

__all__ = [
    "APPROVAL_ORCHESTRATOR", "GRANT_ORCHESTRATOR", "MAX_SQL_CHARS", "ApprovalDesk", "ApprovalNeeded", "CallContext",
    "CommandPreview", "Done", "ExecuteBody", "ExecuteResult", "ExecuteService", "GrantLookup", "Held",
    "MaskerSource", "Pending", "Submitted", "WorkflowStarter", "mask_result", "result_kind", "start_or_abandon",
    "truncation",
]
