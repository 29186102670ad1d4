"""Evaluate a policy: every rule is tried, the most restrictive matching effect decides.

Precedence is by effect, never by position: ``deny`` > ``approve`` > ``allow``. Among matching
rules of the winning effect, the first in file order is the one reported (its id, limits and
approval requirement). So adding a rule can never loosen an existing deny or approval; no matching
rule means deny. An active grant can turn an ``approve`` into ``allow`` (``grants.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from broker.catalog import Target
from broker.guard import Classification, Risk
from broker.identity import Principal
from broker.policy.grants import Grant
from broker.policy.loader import PolicyError, parse_policy
from broker.policy.match import explain_miss
from broker.policy.model import AccessLevel, ApprovalRequirement, Effect, Limits, PolicyDocument, Rule

_RANK: dict[str, int] = {"deny": 0, "approve": 1, "allow": 2}


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
    grant_id: str | None = None
    """Set when an active just-in-time grant turned this rule's ``approve`` into ``allow``."""

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"effect": self.effect, "rule_id": self.rule_id, "reason": self.reason,
                                "policy_version": self.policy_version, "limits": self.limits.model_dump(),
                                "trace": list(self.trace)}
        if self.approval is not None:
            body["approval"] = self.approval.model_dump()
        if self.grant_id is not None:
            body["grant_id"] = self.grant_id
        if self.remedy:
            body["remedy"] = self.remedy
        return body


class Policy:
    """A loaded, validated policy document and its version (hash of the file's bytes)."""

    def __init__(self, document: PolicyDocument, version: str) -> None:
        self.document = document
        self.version = version

    @classmethod
    def load(cls, path: Path) -> Policy:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise PolicyError(f"{path}: cannot read the policy: {exc}") from exc
        return cls(*parse_policy(data, str(path)))

    @classmethod
    def from_text(cls, text: str, source: str = "<policy>") -> Policy:
        return cls(*parse_policy(text.encode("utf-8"), source))

    def decide(self, principal: Principal, target: Target, classification: Classification, *,
               grants: Iterable[Grant] = (), now: datetime | None = None) -> Decision:
        trace: list[str] = [f"command: {classification.language} {classification.statement or ''}".rstrip()
                            + f", risk {classification.risk.value}", f"target: {target.name}"]
        matched = self._matching(principal, target, classification, trace)
        if not matched:
            trace.append("decision: deny (no rule matches; no rule means deny)")
            return Decision("deny", None, f"no rule lets this caller run {classification.risk.value} commands "
                            f"on {target.name}", self.version, self.document.defaults, tuple(trace),
                            remedy="No policy rule covers this; ask an operator to add one (see docs/policy.md).")
        chosen = min(matched, key=lambda r: _RANK[r.effect])  # min() keeps the first of equal rank
        trace.append(f"decision: {chosen.effect} by rule {chosen.id} (deny > approve > allow; "
                     f"matching: {', '.join(r.id for r in matched)})")
        limits = self._tightest_limits([r for r in matched if r.effect == chosen.effect], trace)
        reason = chosen.description or f"rule {chosen.id} ({chosen.effect})"
        if chosen.effect == "deny":
            return Decision("deny", chosen.id, reason, self.version, limits, tuple(trace),
                            remedy=chosen.remedy or f"Denied by policy rule {chosen.id}; neither an approval "
                                                    "nor a grant can lift it.")
        if chosen.effect == "allow":
            return Decision("allow", chosen.id, reason, self.version, limits, tuple(trace))
        grant = self._covering_grant(principal, target, classification.risk, grants, now, trace)
        if grant is not None:
            trace.append(f"decision: allow, because {grant.describe()} covers {classification.risk.value}")
            return Decision("allow", chosen.id, f"{reason} (approved in advance by {grant.describe()})",
                            self.version, limits, tuple(trace), approval=chosen.approval, grant_id=grant.id or None)
        return Decision("approve", chosen.id, reason, self.version, limits, tuple(trace),
                        remedy=chosen.remedy or self._approval_remedy(chosen, classification.risk, target),
                        approval=chosen.approval)

    def decide_grant(self, principal: Principal, target: Target, level: AccessLevel) -> Decision:
        """May this caller ask for a grant of ``level`` on ``target``, and for how long at most?

        The answer is the most restrictive decision over the risk classes the level covers: deny
        if any is denied or allowed by no rule, approve if any needs approval (its approvers, the
        smallest ``max_grant_duration``), allow only if all are allowed outright.
        """
        risks = [Risk(r) for r in getattr(self.document.grants, level)]
        decisions = [self.decide(principal, target, Classification(r, f"a {level} grant", "grant", level))
                     for r in risks]  # rules with a ``kubernetes:`` block never match a grant request
        worst = min(decisions, key=lambda d: _RANK[d.effect])
        shortest = min(d.limits.max_grant_duration for d in decisions if d.effect == worst.effect)
        trace = tuple(line for d in decisions for line in d.trace)
        limits = worst.limits.model_copy(update={"max_grant_duration": shortest})
        return Decision(worst.effect, worst.rule_id, worst.reason, self.version, limits, trace, worst.remedy,
                        worst.approval)

    # --- helpers ---
    def _tightest_limits(self, rules: list[Rule], trace: list[str]) -> Limits:
        """Each limit is the smallest any of these rules sets explicitly, else the default one.

        So a rule can raise a limit for what it alone matches, and adding a rule never loosens one.
        """
        values = self.document.defaults.model_dump()
        sources = dict.fromkeys(values, "defaults")
        for rule in rules:
            explicit = self.document.limits_for(rule).model_dump(include=set(rule.limits or ()))
            for key, value in explicit.items():
                if value is None:  # an unset bound (max_rows_changed) never loosens another rule's
                    continue
                if sources[key] == "defaults" or values[key] is None or value < values[key]:
                    values[key], sources[key] = value, rule.id
        trace.append("limits: " + ", ".join(f"{k}={v} ({sources[k]})" for k, v in values.items() if v is not None))
        return Limits.model_validate(values)

    def _matching(self, principal: Principal, target: Target, classification: Classification,
                  trace: list[str]) -> list[Rule]:
        matched: list[Rule] = []
        for rule in self.document.rules:
            miss = explain_miss(rule.when, principal, target, classification)
            if miss is None and rule.unless is not None and explain_miss(
                    rule.unless, principal, target, classification) is None:
                miss = "its 'unless' exception holds"
            trace.append(f"{rule.id} ({rule.effect}): {'matches' if miss is None else 'skipped, ' + miss}")
            if miss is None:
                matched.append(rule)
        return matched

    def _covering_grant(self, principal: Principal, target: Target, risk: Risk, grants: Iterable[Grant],
                        now: datetime | None, trace: list[str]) -> Grant | None:
        moment = now or datetime.now(UTC)
        for grant in grants:
            miss = grant.miss(principal, target.name, moment)
            if miss is None and not self.document.grants.covers(grant.level, risk):
                miss = f"level {grant.level} does not cover {risk.value}"
            trace.append(f"{grant.describe()}: {'applies' if miss is None else 'not used, ' + miss}")
            if miss is None:
                return grant
        return None

    def _approval_remedy(self, rule: Rule, risk: Risk, target: Target) -> str:
        assert rule.approval is not None
        text = (f"This needs approval by {rule.approval.describe()} within "
                f"{rule.approval.timeout_seconds // 60} minutes.")
        levels = [lv for lv in ("read", "write") if self.document.grants.covers(lv, risk)]
        if levels:
            text += f" Or request a just-in-time grant (level {levels[0]}) for {target.name}."
        return text
