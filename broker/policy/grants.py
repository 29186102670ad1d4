"""Just-in-time grants as the policy sees them: a principal may run up to ``level`` on a target
until ``expires_at``. Stored and managed by ``broker.grants``; the policy only reads them.

A grant lifts "needs approval" and "no rule allows it", never an explicit deny rule, and only
for the risks its level covers: ``read`` covers plain reads, ``write`` adds row changes. Schema,
destructive, privilege and admin commands always follow the rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from broker.guard import Risk

GrantLevel = Literal["read", "write"]

COVERS: dict[str, frozenset[Risk]] = {
    "read": frozenset({Risk.READ}),
    "write": frozenset({Risk.READ, Risk.WRITE}),
}
LEVEL_RISK: dict[str, Risk] = {"read": Risk.READ, "write": Risk.WRITE}
"""The risk a grant request is judged as (who must approve it)."""


@dataclass(frozen=True)
class Grant:
    """An active grant: ``principal`` is the grantee's ``tenant/object id`` key."""

    grant_id: str
    principal: str
    target: str
    level: GrantLevel
    expires_at: datetime

    def covers(self, principal_key: str, target: str, risk: Risk, now: datetime | None = None) -> bool:
        now = now or datetime.now(UTC)
        return (self.principal == principal_key and self.target == target and now < self.expires_at
                and risk in COVERS[self.level])


class GrantPolicy(BaseModel):
    """The policy file's ``grants`` block."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    max_duration: timedelta = Field(default=timedelta(hours=1), ge=timedelta(minutes=1), le=timedelta(days=7))
    """The longest grant anyone may request (ISO 8601 in YAML, e.g. ``PT1H``)."""
