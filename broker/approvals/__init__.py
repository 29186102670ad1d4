"""Human approval: who may approve, the links they receive, the decisions they take, and the
requests that wait for them. Never imports ``azure.functions``; the workflow and HTTP layers
call in."""

from broker.approvals.decisions import Accepted, DecisionDesk, PageView
from broker.approvals.directory import Approver, ApproverDirectory, DirectoryError
from broker.approvals.requests import ApprovalRequest, RequestStore
from broker.approvals.service import ApprovalService, principal_from_record
from broker.approvals.tokens import ApprovalTokens, LinkClaims

__all__ = ["Accepted", "ApprovalRequest", "ApprovalService", "ApprovalTokens", "Approver", "ApproverDirectory",
           "DecisionDesk", "DirectoryError", "LinkClaims", "PageView", "RequestStore", "principal_from_record"]
