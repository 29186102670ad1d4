"""Just-in-time grants as the policy sees them: who, which target, which access level, until when.

Storing, approving and revoking grants is the approvals workflow's job; the policy only needs the
active ones for a decision (``Policy.decide(..., grants=...)``). A grant turns an ``approve`` into
``allow`` for the risk classes its level covers (``grants:`` in the policy file; by default read
covers ``read`` and write covers ``read`` and ``write``). It never lifts a ``deny``, and never
allows what no rule would let a human approve.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from broker.identity import Principal
from broker.policy.model import AccessLevel


@dataclass(frozen=True)
class Grant:
    """An approved, time-boxed access level for one principal on one target."""

    principal: str  # Principal.key: "<tenant id>/<object id>"
    target: str
    level: AccessLevel
    expires_at: datetime  # timezone-aware
    id: str = ""

    def __post_init__(self) -> None:
        if self.level not in ("read", "write"):
            raise ValueError(f"grant level must be 'read' or 'write', not {self.level!r}")
        if self.expires_at.tzinfo is None:
            raise ValueError("grant expiry must be timezone-aware")

    @classmethod
    def for_principal(cls, principal: Principal, target: str, level: AccessLevel, expires_at: datetime,
                      id: str = "") -> Grant:
        return cls(principal.key, target, level, expires_at, id)

    def miss(self, principal: Principal, target: str, now: datetime) -> str | None:
        """None when this grant is active for this principal and target, else why not."""
        if self.principal != principal.key:
            return "it belongs to someone else"
        if self.target != target:
            return f"it is for target {self.target}"
        if now >= self.expires_at:
            return f"it expired at {self.expires_at.astimezone(UTC).isoformat(timespec='seconds')}"
        return None

    def describe(self) -> str:
        until = self.expires_at.astimezone(UTC).isoformat(timespec="seconds")
        return f"grant {self.id or '(no id)'} ({self.level} on {self.target} until {until})"
