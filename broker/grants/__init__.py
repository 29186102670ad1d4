"""Just-in-time grants: time-boxed access approved by people, honoured by the execute path,
ended by a durable timer (or early, by an approver or the grantee)."""

from broker.grants.service import GrantBody, GrantService, iso_duration
from broker.grants.store import GrantRecord, GrantStore

__all__ = ["GrantBody", "GrantRecord", "GrantService", "GrantStore", "iso_duration"]
