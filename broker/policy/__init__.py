"""Policy as code: who may run what on which target, decided by a rule that can be named.

Every decision carries the rule that decided, the policy version (hash of the file) and a trace,
so the journal and the agent can say *why*. No matching rule means deny; a matching deny rule
wins over any allow.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from broker.catalog import Target
from broker.guard import Classification
from broker.identity import Principal
from broker.policy.grants import COVERS, LEVEL_RISK, Grant, GrantLevel, GrantPolicy

__all__ = ["COVERS", "LEVEL_RISK", "ApprovalRequirement", "Decision", "Grant", "GrantLevel", "GrantPolicy",
           "Limits", "Policy", "PolicyError"]

Effect = Literal["allow", "deny", "approve"]


class PolicyError(ValueError):
    """The policy file is invalid; the broker does not start with it."""


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    max_rows: int = Field(default=1000, ge=1, le=100_000)
    max_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    statement_timeout_ms: int = Field(default=5000, ge=100, le=600_000)


class ApprovalRequirement(BaseModel):
    """Who must approve, how many, and how long they have (then: default deny)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    groups: tuple[str, ...] = ()
    roles: tuple[str, ...] = ("Broker.Approver",)
    quorum: int = Field(default=1, ge=1, le=10)
    timeout_seconds: int = Field(default=900, ge=30, le=7 * 24 * 3600)


class Match(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    roles: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    tenants: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    labels: dict[str, str] = Field(default_factory=dict)
    risk: tuple[str, ...] = ()

    def explain_miss(self, principal: Principal, target: Target, cls: Classification) -> str | None:
        """None when the rule matches, else the first reason it does not."""
        if self.roles and not principal.roles & set(self.roles):
            return f"caller has none of the roles {list(self.roles)}"
        if self.groups and not principal.groups & set(self.groups):
            return f"caller is in none of the groups {list(self.groups)}"
        if self.tenants and principal.tenant_id not in self.tenants:
            return "caller's tenant is not listed"
        if self.targets and target.name not in self.targets:
            return f"target {target.name} is not listed"
        for key, value in self.labels.items():
            if target.labels.get(key) != value:
                return f"target label {key}={value} does not hold"
        if self.risk and cls.risk.value not in self.risk:
            return f"risk {cls.risk.value} is not in {list(self.risk)}"
        return None


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")
    description: str = ""
    when: Match = Match()
    effect: Effect
    limits: Limits | None = None
    approval: ApprovalRequirement | None = None

    @model_validator(mode="after")
    def _approval_goes_with_approve(self) -> Rule:
        if self.effect == "approve" and self.approval is None:
            raise ValueError(f"rule {self.id}: effect 'approve' needs an 'approval' block")
        if self.effect != "approve" and self.approval is not None:
            raise ValueError(f"rule {self.id}: 'approval' only goes with effect 'approve'")
        return self


class PolicyDocument(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    version: Literal[1] = 1
    defaults: Limits = Limits()
    rules: tuple[Rule, ...] = ()
    grants: GrantPolicy = GrantPolicy()


@dataclass(frozen=True)
class Decision:
    effect: Effect
    rule_id: str | None
    reason: str
    policy_version: str
    limits: Limits
    trace: tuple[str, ...] = ()
    remedy: str | None = None
    approval: ApprovalRequirement | None = field(default=None)

    def to_dict(self) -> dict[str, Any]:
        return {"effect": self.effect, "rule_id": self.rule_id, "reason": self.reason,
                "policy_version": self.policy_version, "trace": list(self.trace)}


class Policy:
    def __init__(self, document: PolicyDocument, version: str) -> None:
        self.document = document
        self.version = version

    @classmethod
    def load(cls, path: Path) -> Policy:
        try:
            data = Path(path).read_bytes()
            raw = yaml.safe_load(data) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise PolicyError(f"{path}: cannot read the policy: {exc}") from exc
        try:
            document = PolicyDocument.model_validate(raw)
        except ValidationError as exc:
            raise PolicyError(f"{path}: invalid policy:\n{exc}") from exc
        return cls(document, "sha256:" + hashlib.sha256(data).hexdigest()[:16])

    def decide(self, principal: Principal, target: Target, cls: Classification,
               grants: Sequence[Grant] = (), now: datetime | None = None) -> Decision:
        """The rules' decision; an active grant covering the risk turns approve / no-rule into allow."""
        decision = self._decide_rules(principal, target, cls)
        if decision.effect == "allow" or not grants or (decision.effect == "deny" and decision.rule_id):
            return decision
        grant = next((g for g in grants if g.covers(principal.key, target.name, cls.risk, now)), None)
        if grant is None:
            return decision
        return Decision("allow", f"grant:{grant.grant_id}",
                        f"just-in-time {grant.level} grant until {grant.expires_at.isoformat(timespec='seconds')}",
                        self.version, decision.limits,
                        (*decision.trace, f"grant {grant.grant_id}: covers {cls.risk.value}"))

    def _decide_rules(self, principal: Principal, target: Target, cls: Classification) -> Decision:
        trace: list[str] = []
        matched: list[Rule] = []
        for rule in self.document.rules:
            miss = rule.when.explain_miss(principal, target, cls)
            trace.append(f"{rule.id}: {'matches' if miss is None else 'skipped, ' + miss}")
            if miss is None:
                matched.append(rule)
        deny = next((r for r in matched if r.effect == "deny"), None)
        chosen = deny or (matched[0] if matched else None)
        if chosen is None:
            return Decision("deny", None, f"no rule allows {cls.risk.value} on {target.name} for this caller",
                            self.version, self.document.defaults, tuple(trace),
                            remedy="Ask an operator for a policy rule, or request a just-in-time grant.")
        limits = chosen.limits or self.document.defaults
        reason = chosen.description or f"rule {chosen.id} ({chosen.effect})"
        remedy = None if chosen.effect != "deny" else "This command is denied by policy; no grant can lift it."
        return Decision(chosen.effect, chosen.id, reason, self.version, limits, tuple(trace), remedy,
                        chosen.approval)
