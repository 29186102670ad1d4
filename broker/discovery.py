"""What a caller may do, asked without doing it: ``explain`` for one command, ``permissions`` per target.

Both ask the same ``Policy.decide`` the execute path asks (``ExecuteService.evaluate`` for a command),
so an answer here is the answer ``/api/execute`` would give now; grants that end or a policy that
changes can change it later. Nothing here runs a command; ``explain`` is journaled all the same
(``execute.explained``), so probing the policy leaves a trace.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from broker.catalog import Target
from broker.execute import CallContext, ExecuteBody, ExecuteService, GrantLookup
from broker.execute.service import decided
from broker.guard import Classification, Risk
from broker.guard.languages import CommandLanguage
from broker.identity import Principal
from broker.journal import JournalWriter
from broker.journal import events as journaled
from broker.journal.events import Subject
from broker.policy import Decision, Grant, Policy
from broker.policy.match import explain_miss
from broker.problems import BrokerError

_OUTCOME = {"allow": "runs now", "approve": "waits for approval (202 with a request id)", "deny": "is refused (403)"}


def _decision_view(decision: Decision) -> dict[str, Any]:
    body: dict[str, Any] = {"effect": decision.effect, "rule_id": decision.rule_id, "reason": decision.reason}
    if decision.approval is not None:
        body["approvers"] = {"groups": list(decision.approval.groups), "roles": list(decision.approval.roles),
                             "quorum": decision.approval.quorum,
                             "timeout_seconds": decision.approval.timeout_seconds}
    if decision.grant_id:
        body["grant_id"] = decision.grant_id
    if decision.remedy:
        body["remedy"] = decision.remedy
    return body


class Discovery:
    """``explain`` and ``permissions``: the policy's answers, for the caller to plan with."""

    def __init__(self, *, execute: ExecuteService, policy: Policy, journal: JournalWriter,
                 grants: GrantLookup | None = None) -> None:
        self._execute = execute
        self._policy = policy
        self._journal = journal
        self._grants = grants

    def explain(self, principal: Principal, body: ExecuteBody, ctx: CallContext) -> dict[str, Any]:
        """The decision for ``body``'s command: risk, effect, rule, approvers, limits, remedy.

        An unknown target or a command that is not one valid statement raises the same
        BrokerError that ``/api/execute`` would answer with.
        """
        request_id = str(uuid.uuid4())
        subject = Subject(request_id=request_id, principal=principal.describe(), client=ctx.to_dict(),
                          reason=body.reason, ticket=body.ticket, target=body.target)
        try:
            target, command, classification, decision = self._execute.evaluate(principal, body)
        except BrokerError as refusal:
            self._journal.write(journaled.execute_explained(subject.refined(command=body.command().canonical()),
                                                            journaled.refused(refusal.code)))
            raise
        answer: dict[str, Any] = {
            "target": target.name, "risk": classification.risk.value, "risk_reason": classification.reason,
            "statement": classification.statement, "read_only": classification.read_only or target.read_only,
            **_decision_view(decision), "would": _OUTCOME[decision.effect],
            "limits": decision.limits.model_dump(), "policy_version": decision.policy_version,
            "trace": list(decision.trace), "request_id": request_id}
        self._journal.write(journaled.execute_explained(
            decided(subject, target, command, classification, decision), {"status": "ok", "effect": decision.effect}))
        return answer

    def permissions(self, principal: Principal, target: Target, language: CommandLanguage) -> dict[str, Any]:
        """Per risk class, what this caller may do on ``target`` (allow / approve by whom / deny).

        Rules that also look at the Kubernetes command (verbs, resources, namespaces) cannot be
        decided without one: they are listed under ``conditional`` with their conditions.
        """
        grants: Sequence[Grant] = self._grants(principal.key, target.name) if self._grants else ()
        risks: dict[str, Any] = {}
        for risk in Risk:
            probe = Classification(risk, f"any {risk.value} command", language.kind)
            view = _decision_view(self._policy.decide(principal, target, probe, grants=grants))
            conditional = self._conditional(principal, target, probe)
            if conditional:
                view["conditional"] = conditional
            risks[risk.value] = view
        return risks

    def _conditional(self, principal: Principal, target: Target, probe: Classification) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for rule in self._policy.document.rules:
            if rule.when.kubernetes is None:
                continue
            general = rule.when.model_copy(update={"kubernetes": None})
            if explain_miss(general, principal, target, probe) is None:
                out.append({"rule_id": rule.id, "effect": rule.effect,
                            "when": rule.when.kubernetes.model_dump(exclude_defaults=True)})
        return out
