"""Decisions: effect precedence independent of order, no rule means deny, conditions on caller,
target and command (Kubernetes included), exceptions, limits, the trace, and the grant seam."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from broker.catalog import Target
from broker.guard import Classification, Risk
from broker.identity import Principal
from broker.policy import Grant, Policy

AGENT = Principal("tenant-a", "agent-1", app_id="app-1", kind="app", roles=frozenset({"Broker.Caller"}),
                  groups=frozenset({"agents"}))
PROD = Target(name="orders-db", engine="postgres", labels={"env": "prod", "data": "pii"},
              credential={"source": "key-vault", "secret": "x"})
STAGING = Target(name="orders-staging", engine="postgres", labels={"env": "staging"},
                 credential={"source": "key-vault", "secret": "x"})
AKS = Target(name="aks-prod", engine="kubernetes", labels={"env": "prod"},
             credential={"source": "managed-identity", "scope": "x"})
NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def sql(risk: str) -> Classification:
    return Classification(Risk(risk), f"a {risk} statement", "sql", "X")


def k8s(verb: str, resource: str, namespace: str = "payments", subresource: str = "",
        risk: str = "write") -> Classification:
    return Classification(Risk(risk), "k8s", "kubernetes", f"{verb} {resource}",
                          {"verb": verb, "resource": resource, "namespace": namespace, "subresource": subresource})


def policy(*rules: str, head: str = "") -> Policy:
    return Policy.from_text("version: 1\n" + head + ("rules:\n" + "".join(rules) if rules else "rules: []\n"))


ALLOW = "  - id: allow-all\n    effect: allow\n"
APPROVE = "  - id: approve-all\n    effect: approve\n    approval: {groups: [dba]}\n"
DENY = "  - id: deny-all\n    effect: deny\n"


@pytest.mark.parametrize("order", list(itertools.permutations([ALLOW, APPROVE, DENY])))
def test_deny_beats_approve_beats_allow_in_any_order(order: tuple[str, ...]) -> None:
    assert policy(*order).decide(AGENT, PROD, sql("read")).effect == "deny"
    without_deny = [r for r in order if r is not DENY]
    decision = policy(*without_deny).decide(AGENT, PROD, sql("read"))
    assert (decision.effect, decision.rule_id) == ("approve", "approve-all")


def test_first_rule_of_the_winning_effect_is_reported() -> None:
    decision = policy("  - id: a\n    effect: allow\n    description: first\n", "  - id: b\n    effect: allow\n"
                      ).decide(AGENT, PROD, sql("read"))
    assert (decision.rule_id, decision.reason) == ("a", "first")


def test_no_rule_means_deny_with_a_remedy() -> None:
    decision = policy("  - id: only-staging\n    effect: allow\n    when: {targets: [orders-staging]}\n"
                      ).decide(AGENT, PROD, sql("read"))
    assert (decision.effect, decision.rule_id) == ("deny", None)
    assert decision.remedy and "no rule" in decision.trace[-1]
    assert policy().decide(AGENT, PROD, sql("read")).effect == "deny"  # an empty policy denies everything


@pytest.mark.parametrize(("when", "matches"), [
    ("{roles: [Broker.Caller]}", True), ("{roles: [Broker.Admin]}", False),
    ("{groups: [agents, dba]}", True), ("{groups: [dba]}", False),
    ("{tenants: [tenant-a]}", True), ("{tenants: [tenant-b]}", False),
    ("{object_ids: [agent-1]}", True), ("{object_ids: [agent-2]}", False),
    ("{app_ids: [app-1]}", True), ("{app_ids: [app-2]}", False),
    ("{kinds: [app]}", True), ("{kinds: [user]}", False),
    ("{targets: [orders-db]}", True), ("{targets: ['orders-*']}", True), ("{targets: ['crm-*']}", False),
    ("{engines: [postgres]}", True), ("{engines: [mysql, mssql]}", False),
    ("{labels: {env: prod}}", True), ("{labels: {env: [dev, prod]}}", True), ("{labels: {env: staging}}", False),
    ("{labels: {env: prod, data: pii}}", True), ("{labels: {env: prod, data: none}}", False),
    ("{labels: {owner: team-a}}", False),
    ("{risk: [read, write]}", True), ("{risk: [write]}", False),
    ("{roles: [Broker.Caller], risk: [write]}", False),
    ("{kubernetes: {verbs: [get]}}", False),  # a SQL command never matches a Kubernetes condition
])
def test_each_condition(when: str, matches: bool) -> None:
    decision = policy(f"  - id: r\n    effect: allow\n    when: {when}\n").decide(AGENT, PROD, sql("read"))
    assert (decision.effect == "allow") is matches, decision.trace
    if not matches:
        assert "skipped, " in decision.trace[2]


@pytest.mark.parametrize(("condition", "command", "matches"), [
    ("{verbs: [get, list]}", k8s("get", "pods"), True),
    ("{verbs: [delete]}", k8s("get", "pods"), False),
    ("{resources: [pods]}", k8s("get", "pods"), True),
    ("{resources: [pods]}", k8s("create", "pods", subresource="exec"), False),  # RBAC: pods is not pods/exec
    ("{resources: [pods/exec]}", k8s("create", "pods", subresource="exec"), True),
    ("{resources: ['pods/*']}", k8s("get", "pods", subresource="log"), True),
    ("{resources: ['pods/*']}", k8s("get", "pods"), False),
    ("{subresources: [exec, attach]}", k8s("create", "pods", subresource="attach"), True),
    ("{namespaces: [payments]}", k8s("get", "pods"), True),
    ("{namespaces: ['kube-*']}", k8s("get", "pods", namespace="kube-system"), True),
    ("{namespaces: ['kube-*']}", k8s("get", "pods"), False),
    ("{namespaces: ['*']}", k8s("get", "nodes", namespace=""), False),  # cluster-scoped: no namespace
    ("{verbs: [patch], resources: [deployments], namespaces: [payments]}", k8s("patch", "deployments"), True),
])
def test_kubernetes_conditions(condition: str, command: Classification, matches: bool) -> None:
    decision = policy(f"  - id: r\n    effect: allow\n    when: {{kubernetes: {condition}}}\n").decide(
        AGENT, AKS, command)
    assert (decision.effect == "allow") is matches, decision.trace


def test_kubernetes_risk_classes_match_like_any_other() -> None:
    rules = policy("  - id: no-secrets\n    effect: deny\n    when: {risk: [read-secret]}\n",
                   "  - id: exec-needs-sre\n    effect: approve\n    when: {risk: [exec]}\n"
                   "    approval: {groups: [sre]}\n", ALLOW)
    assert rules.decide(AGENT, AKS, k8s("get", "secrets", risk="read-secret")).rule_id == "no-secrets"
    assert rules.decide(AGENT, AKS, k8s("create", "pods", subresource="exec", risk="exec")).effect == "approve"


def test_unless_spares_the_named_callers_only() -> None:
    rules = policy("  - id: oncall-only\n    effect: deny\n    when: {risk: [read-secret]}\n"
                   "    unless: {groups: [sre-oncall]}\n", ALLOW)
    oncall = Principal("tenant-a", "sre-1", groups=frozenset({"sre-oncall"}))
    assert rules.decide(AGENT, AKS, k8s("get", "secrets", risk="read-secret")).effect == "deny"
    spared = rules.decide(oncall, AKS, k8s("get", "secrets", risk="read-secret"))
    assert (spared.effect, spared.rule_id) == ("allow", "allow-all")
    assert any("'unless' exception holds" in line for line in spared.trace)


def test_limits_are_the_tightest_explicit_value_and_a_rule_can_raise_its_own() -> None:
    rules = policy("  - id: general\n    effect: allow\n",
                   "  - id: pii\n    effect: allow\n    when: {labels: {data: pii}}\n    limits: {max_rows: 50}\n",
                   "  - id: long\n    effect: allow\n    when: {labels: {env: prod}}\n"
                   "    limits: {max_rows: 5000, statement_timeout_ms: 60000}\n",
                   head="defaults: {max_rows: 1000, statement_timeout_ms: 5000}\n")
    prod = rules.decide(AGENT, PROD, sql("read"))
    assert prod.rule_id == "general"
    assert (prod.limits.max_rows, prod.limits.statement_timeout_ms) == (50, 60000)
    assert "max_rows=50 (pii)" in prod.trace[-1] and "statement_timeout_ms=60000 (long)" in prod.trace[-1]
    staging = rules.decide(AGENT, STAGING, sql("read"))
    assert (staging.limits.max_rows, staging.limits.statement_timeout_ms) == (1000, 5000)


def test_decision_carries_rule_version_trace_and_approval() -> None:
    rules = policy("  - id: writes\n    description: writes need a DBA\n    effect: approve\n"
                   "    when: {risk: [write]}\n    approval: {groups: [dba], quorum: 2, timeout: 20m}\n")
    decision = rules.decide(AGENT, PROD, sql("write"))
    assert (decision.effect, decision.rule_id, decision.reason) == ("approve", "writes", "writes need a DBA")
    assert decision.policy_version == rules.version
    assert decision.approval is not None
    assert (decision.approval.groups, decision.approval.quorum, decision.approval.timeout_seconds) == (
        ("dba",), 2, 1200)
    assert decision.trace[:3] == ("command: sql X, risk write", "target: orders-db", "writes (approve): matches")
    assert decision.remedy and "grant" in decision.remedy
    body = decision.to_dict()
    assert body["rule_id"] == "writes" and body["approval"]["quorum"] == 2 and body["trace"]


# --- the grant seam -------------------------------------------------------------------------------
GATED = policy("  - id: never-privilege\n    effect: deny\n    when: {risk: [privilege]}\n",
               "  - id: reads\n    effect: allow\n    when: {risk: [read]}\n",
               "  - id: changes-need-approval\n    effect: approve\n"
               "    when: {risk: [write, schema, destructive, admin, exec, session, unknown]}\n"
               "    approval: {groups: [dba]}\n    limits: {max_grant_duration: 2h}\n")


def grant(level: str = "write", *, who: Principal = AGENT, target: str = "orders-db",
          expires: datetime = NOW + timedelta(hours=1)) -> Grant:
    return Grant.for_principal(who, target, level, expires, f"g-{level}")


def test_a_write_grant_turns_approve_into_allow_for_writes() -> None:
    decision = GATED.decide(AGENT, PROD, sql("write"), grants=[grant()], now=NOW)
    assert (decision.effect, decision.rule_id, decision.grant_id) == ("allow", "changes-need-approval", "g-write")
    assert "covers write" in decision.trace[-1]


@pytest.mark.parametrize("risk", ["schema", "destructive", "admin", "exec", "session", "unknown"])
def test_a_write_grant_covers_nothing_beyond_write(risk: str) -> None:
    decision = GATED.decide(AGENT, PROD, sql(risk), grants=[grant()], now=NOW)
    assert (decision.effect, decision.grant_id) == ("approve", None)
    assert f"level write does not cover {risk}" in "\n".join(decision.trace)


def test_a_grant_never_lifts_a_deny_nor_a_missing_rule() -> None:
    assert GATED.decide(AGENT, PROD, sql("privilege"), grants=[grant()], now=NOW).effect == "deny"
    only_reads = policy("  - id: reads\n    effect: allow\n    when: {risk: [read]}\n")
    assert only_reads.decide(AGENT, PROD, sql("write"), grants=[grant()], now=NOW).effect == "deny"


@pytest.mark.parametrize(("bad", "why"), [
    (grant("read"), "level read does not cover write"),
    (grant(expires=NOW), "expired"),
    (grant(who=Principal("tenant-a", "someone-else")), "belongs to someone else"),
    (grant(target="orders-staging"), "is for target orders-staging"),
])
def test_grants_that_do_not_apply(bad: Grant, why: str) -> None:
    decision = GATED.decide(AGENT, PROD, sql("write"), grants=[bad], now=NOW)
    assert decision.effect == "approve"
    assert why in "\n".join(decision.trace)


def test_the_policy_can_widen_what_a_grant_covers() -> None:
    wide = policy("  - id: changes\n    effect: approve\n    when: {risk: [write, schema]}\n"
                  "    approval: {groups: [dba]}\n", head="grants: {write: [read, write, schema]}\n")
    assert wide.decide(AGENT, PROD, sql("schema"), grants=[grant()], now=NOW).effect == "allow"


def test_grant_values_are_checked() -> None:
    with pytest.raises(ValueError, match="level"):
        Grant("t/o", "db", "admin", NOW)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timezone"):
        Grant("t/o", "db", "write", datetime(2025, 1, 1))  # naive: the point of the test


def test_decide_grant_says_who_approves_and_for_how_long() -> None:
    request = GATED.decide_grant(AGENT, PROD, "write")
    assert (request.effect, request.rule_id) == ("approve", "changes-need-approval")
    assert request.approval is not None and request.approval.groups == ("dba",)
    assert request.limits.max_grant_duration == 7200
    assert GATED.decide_grant(AGENT, PROD, "read").effect == "allow"
    denied = policy("  - id: reads\n    effect: allow\n    when: {risk: [read]}\n").decide_grant(AGENT, PROD, "write")
    assert denied.effect == "deny"


@pytest.mark.parametrize(("rows", "rule"), [(None, "any-write"), (0, "any-write"), (100, "any-write"),
                                            (101, "big-write"), (5000, "huge-write")])
def test_rows_changed_over_holds_only_once_the_rows_are_measured(rows: int | None, rule: str) -> None:
    """Before the trial (no ``rows_changed``) such a rule never matches; after it, by the count."""
    rules = policy("  - id: huge-write\n    when: {risk: [write], rows_changed_over: 1000}\n    effect: deny\n",
                   "  - id: big-write\n    when: {risk: [write], rows_changed_over: 100}\n    effect: approve\n"
                   "    approval: {groups: [dba], quorum: 2}\n",
                   "  - id: any-write\n    when: {risk: [write]}\n    effect: approve\n    approval: {groups: [dba]}\n")
    command = sql("write") if rows is None else Classification(Risk.WRITE, "w", "sql", "UPDATE", {"rows_changed": rows})
    decision = rules.decide(AGENT, PROD, command)
    assert decision.rule_id == rule
    if rows is None:
        assert any("not measured yet" in line for line in decision.trace)
