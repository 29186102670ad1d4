"""The README's policy section behaves as the README says: its policy loads, and every row of its
decision table is what the policy decides."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from broker.catalog import Target
from broker.guard.sql import classify_sql
from broker.identity import Principal
from broker.policy import Policy

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _after(marker: str) -> str:
    return README[README.index(marker) + len(marker):]


def readme_policy(tmp_path: Path) -> Policy:
    block = re.search(r"```yaml\n(.*?)```", _after("<!-- readme-policy -->"), re.S).group(1)
    path = tmp_path / "policy.yaml"
    path.write_text(block)
    return Policy.load(path)


def readme_cases() -> list[tuple[str, str, str, str]]:
    rows = []
    for line in _after("<!-- readme-policy-cases -->").splitlines()[3:]:
        if not line.startswith("|"):
            break
        roles, sql, effect, rule = (cell.strip() for cell in line.strip("|").split("|"))
        rows.append((roles, sql.strip("`"), effect, rule))
    return rows


CASES = readme_cases()
ORDERS = Target(name="orders-db", engine="postgres", labels={"env": "prod"},
                credential={"source": "key-vault", "secret": "orders-db-reader"})


def test_the_readme_has_a_decision_table():
    assert len(CASES) >= 5


@pytest.mark.parametrize("roles, sql, effect, rule", CASES)
def test_each_readme_row_is_what_the_policy_decides(tmp_path, roles, sql, effect, rule):
    policy = readme_policy(tmp_path)
    principal = Principal(tenant_id="t", object_id="o",
                          roles=frozenset() if roles == "(none)" else frozenset(roles.split(", ")))
    decision = policy.decide(principal, ORDERS, classify_sql(sql, "postgres"))
    assert decision.effect == effect
    assert decision.rule_id == (None if rule == "(no rule)" else rule)
