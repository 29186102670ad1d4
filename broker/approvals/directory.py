"""Who may approve: a YAML list of people (Entra tenant + object id, name, email, groups, roles),
kept in the repository beside the policy (``BROKER_APPROVERS_PATH``).

An ``ApprovalRequirement`` names groups and roles; the approvers for a request are the people in
any of those groups holding any of those roles, never the requester (compared by object id in
lowercase, not by name or email), and nobody listed may hold ``Broker.Caller``. A missing file
means "nobody can approve": requests that need a human are refused up front instead of waiting
for nobody.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from broker.approvals.independence import CALLER_ROLE, normal_key
from broker.policy import ApprovalRequirement

GUID = r"^[0-9a-fA-F-]{36}$"


class DirectoryError(ValueError):
    """The approvers file is invalid; the broker does not start with it."""


class Approver(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    tenant_id: str = Field(pattern=GUID)
    object_id: str = Field(pattern=GUID)
    name: str = Field(min_length=1, max_length=100)
    email: str = Field(pattern=r"^[^@\s<>]+@[^@\s<>]+$", max_length=254)
    groups: tuple[str, ...] = ()
    roles: tuple[str, ...] = ("Broker.Approver",)

    @field_validator("tenant_id", "object_id")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()  # one spelling: rows, events and comparisons use lowercase GUIDs

    @field_validator("roles")
    @classmethod
    def _never_an_agent(cls, roles: tuple[str, ...]) -> tuple[str, ...]:
        if CALLER_ROLE in roles:
            raise ValueError(f"an approver may not hold {CALLER_ROLE} (agents never approve)")
        return roles

    @property
    def key(self) -> str:
        return f"{self.tenant_id}/{self.object_id}"

    def satisfies(self, requirement: ApprovalRequirement) -> bool:
        in_group = not requirement.groups or bool(set(self.groups) & set(requirement.groups))
        has_role = not requirement.roles or bool(set(self.roles) & set(requirement.roles))
        return in_group and has_role


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    approvers: tuple[Approver, ...] = ()


class ApproverDirectory:
    def __init__(self, approvers: tuple[Approver, ...] = ()) -> None:
        self._by_key = {a.key: a for a in approvers}
        if len(self._by_key) != len(approvers):
            raise DirectoryError("an approver is listed twice (same tenant and object id)")

    @classmethod
    def load(cls, path: Path) -> ApproverDirectory:
        path = Path(path)
        if not path.exists():
            return cls()
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            return cls(_File.model_validate(raw).approvers)
        except (OSError, yaml.YAMLError, ValidationError) as exc:
            raise DirectoryError(f"{path}: invalid approvers file:\n{exc}") from exc

    def get(self, key: str) -> Approver | None:
        return self._by_key.get(normal_key(key))

    def eligible(self, requirement: ApprovalRequirement, requester: str) -> list[Approver]:
        """Everyone who may decide this request (the requester never may)."""
        mine = normal_key(requester).partition("/")[2]
        return [a for a in self._by_key.values() if a.object_id != mine and a.satisfies(requirement)]

    def is_eligible(self, key: str, requirement: ApprovalRequirement, requester: str) -> bool:
        key = normal_key(key)
        approver = self._by_key.get(key)
        return (approver is not None and approver.object_id != normal_key(requester).partition("/")[2]
                and approver.satisfies(requirement))
