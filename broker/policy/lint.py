"""Warnings for policies that are valid but probably not what the operator meant.

``python -m broker policy check`` prints them; they never stop the broker (errors do).
"""

from __future__ import annotations

from broker.policy.model import Match, PolicyDocument

# Classes that should reach a human, not flow through an ``allow`` or a grant.
_HUMAN_ONLY = ("destructive", "privilege", "hidden-text", "admin", "unknown")
_IDENTITY_KEYS = ("roles", "groups", "tenants", "object_ids", "app_ids", "kinds")


def lint(document: PolicyDocument) -> list[str]:
    warnings: list[str] = []
    if not document.rules:
        warnings.append("the policy has no rules: every command is denied")
    for rule in document.rules:
        where = f"rule {rule.id}"
        if rule.effect != "allow":
            continue
        if not _has_identity(rule.when):
            warnings.append(f"{where}: allows every caller (no roles, groups, tenants or ids)")
        if not rule.when.risk and rule.when.kubernetes is None:
            warnings.append(f"{where}: allows every risk class, including {', '.join(_HUMAN_ONLY)}")
        risky = [r for r in rule.when.risk if r in _HUMAN_ONLY]
        if risky:
            warnings.append(f"{where}: allows {', '.join(risky)} commands without a human")
    for level in ("read", "write"):
        risky = [r for r in getattr(document.grants, level) if r in _HUMAN_ONLY]
        if risky:
            warnings.append(f"grants.{level}: a grant lets its holder run {', '.join(risky)} commands unapproved")
    return warnings


def _has_identity(match: Match) -> bool:
    return any(getattr(match, key) for key in _IDENTITY_KEYS)
