"""``describe_target``: what there is on a target, as far as this caller may use it, and never a value.

For a database: its tables and views with each column's type and whether it is sensitive (and as
what), read from the catalog the lineage guard already keeps (``information_schema``; no row is
read, view definitions are not shown, system schemas are left out). For a Kubernetes cluster: the
policy rules that can apply to this caller there, with the verbs, resource kinds and namespaces
they name. A caller whom the policy lets do nothing on the target learns nothing about it (403
``policy_denied``). Every answer and refusal is journaled (``target.described``).
"""

from __future__ import annotations

import uuid
from typing import Any

from broker.discovery import Discovery
from broker.execute import CallContext, ExecuteService
from broker.guard import Classification, Risk
from broker.guard.languages import KUBECTL
from broker.identity import Principal
from broker.journal import JournalWriter
from broker.journal import events as journaled
from broker.journal.events import Subject
from broker.policy import Policy
from broker.policy.match import explain_miss
from broker.problems import BrokerError, Forbidden

MAX_TABLES = 300
MAX_COLUMNS = 300
SYSTEM_SCHEMAS = frozenset({"pg_catalog", "information_schema", "pg_toast", "mysql", "performance_schema", "sys"})


class TargetDescriber:
    def __init__(self, *, execute: ExecuteService, discovery: Discovery, policy: Policy,
                 journal: JournalWriter) -> None:
        self._execute = execute
        self._discovery = discovery
        self._policy = policy
        self._journal = journal

    def describe(self, principal: Principal, target_name: str, ctx: CallContext) -> dict[str, Any]:
        subject = Subject(request_id=str(uuid.uuid4()), principal=principal.describe(), client=ctx.to_dict(),
                          target=target_name[:63])
        try:
            answer = self._describe(principal, target_name)
        except BrokerError as refusal:
            self._journal.write(journaled.target_described(subject, journaled.refused(refusal.code)))
            raise
        self._journal.write(journaled.target_described(subject, {
            "status": "ok", "kind": answer["kind"], "tables": len(answer.get("tables", [])),
            "rules": len(answer.get("rules", []))}))
        return answer

    def _describe(self, principal: Principal, target_name: str) -> dict[str, Any]:
        target = self._execute.catalog.get(target_name)
        language = self._execute.language_of(target)
        permissions = self._discovery.permissions(principal, target, language)
        if all(p["effect"] == "deny" and not p.get("conditional") for p in permissions.values()):
            raise Forbidden(f"The policy lets you do nothing on {target.name}, so it is not described to you.",
                            code="policy_denied", remedy="Ask an operator for access; GET /api/targets shows "
                                                         "what you may do where.")
        head = {**target.public_view(), "language": language.name}
        if language is KUBECTL:
            return {**head, "kind": KUBECTL.kind, **self._kubernetes(principal, target)}
        found = self._execute.schema_of(target.name)
        if found is None:
            return {**head, "kind": "tables", "tables": [], "table_count": 0, "truncated": False,
                    "unavailable_reason": "this engine cannot list its columns; every column is masked"}
        _, schema, sensitivity = found
        tables = []
        for key, columns in sorted(schema.tables.items()):
            if key[0].lower() in SYSTEM_SCHEMAS:
                continue
            types = schema.types.get(key, ())
            cols = []
            for i, column in enumerate(columns[:MAX_COLUMNS]):
                kind = sensitivity.kind(key, column)
                cols.append({"name": column, "type": types[i] if i < len(types) else "",
                             "sensitive": kind is not None, **({"sensitivity": kind} if kind else {})})
            tables.append({"schema": key[0], "name": key[1], "view": key in schema.views, "columns": cols,
                           **({"columns_truncated": True} if len(columns) > MAX_COLUMNS else {})})
        return {**head, "kind": "tables", "tables": tables[:MAX_TABLES], "table_count": len(tables),
                "truncated": len(tables) > MAX_TABLES, "limit": MAX_TABLES}

    def _kubernetes(self, principal: Principal, target: Any) -> dict[str, Any]:
        """The rules that can apply to this caller here, in policy order (the first match decides)."""
        rules, namespaces, resources = [], set(), set()
        for rule in self._policy.document.rules:
            general = rule.when.model_copy(update={"kubernetes": None})
            risks = [risk.value for risk in Risk if explain_miss(
                general, principal, target, Classification(risk, f"any {risk.value} command", KUBECTL.kind)) is None]
            if not risks:
                continue
            k8s = rule.when.kubernetes
            entry = {"rule_id": rule.id, "effect": rule.effect, "risk": risks,
                     "verbs": list(k8s.verbs) if k8s and k8s.verbs else ["*"],
                     "resources": list(k8s.resources) if k8s and k8s.resources else ["*"],
                     "namespaces": list(k8s.namespaces) if k8s and k8s.namespaces else ["*"]}
            rules.append(entry)
            if rule.effect != "deny":
                namespaces.update(entry["namespaces"])
                resources.update(entry["resources"])
        return {"rules": rules, "namespaces": sorted(namespaces), "resources": sorted(resources)}
