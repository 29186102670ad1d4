"""Just-in-time grants: time-boxed access approved by people, honoured by the execute path,
ended by a durable timer (or early, by an approver or the grantee). The grant's lifecycle lives
here alone (``store.py``); the approvals are reached through ``ports.ApprovalRequests``."""

from broker.grants.ports import ApprovalRequests, GrantRecords
from broker.grants.service import GrantBody, GrantService, iso_duration
from broker.grants.store import GrantRecord, GrantStore
from broker.grants.view import GrantView, standing_of

__all__ = ["ApprovalRequests", "GrantBody", "GrantRecord", "GrantRecords", "GrantService", "GrantStore", "GrantView",
           "iso_duration", "standing_of"]
