"""docs/policy.md is executable: its example policy is config/examples/policy.yaml, every YAML block in
it is a valid policy (or rule), every scenario row decides as the page says, and the console
examples print what the page shows."""

from __future__ import annotations

import io
import re
from contextlib import redirect_stderr, redirect_stdout
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from broker.catalog import Target
from broker.cli import main
from broker.guard import Classification, Risk
from broker.guard.sql import classify_sql
from broker.identity import Principal
from broker.policy import Grant, Policy

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "policy.md").read_text(encoding="utf-8")
DIALECTS = {"postgres": "postgres", "mysql": "mysql", "mssql": "tsql"}


def _block_after(marker: str, lang: str) -> str:
    match = re.search(re.escape(marker) + r"\s*```" + lang + r"\n(.*?)```", DOC, re.S)
    assert match, f"docs/policy.md has no ```{lang} block after {marker}"
    return match.group(1)


def _policy() -> Policy:
    return Policy.from_text(_block_after("<!-- example-policy -->", "yaml"), "docs/policy.md")


def _targets() -> dict[str, Target]:
    specs = yaml.safe_load(_block_after("<!-- example-catalog -->", "yaml"))["targets"]
    return {name: Target(name=name, credential={"source": "key-vault", "secret": "x"}, **spec)
            for name, spec in specs.items()}


def _scenarios() -> list[list[str]]:
    table = DOC.split("<!-- scenarios -->", 1)[1].strip().split("\n\n", 1)[0]
    rows = [[cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]
            for line in table.splitlines()[2:]]
    assert len(rows) >= 20
    return rows


def _caller(text: str) -> tuple[Principal, str | None]:
    roles, groups, grant = set(), set(), None
    for item in (part.strip() for part in text.split(",")):
        kind, _, value = item.partition(" ")
        if kind == "role":
            roles.add(value)
        elif kind == "group":
            groups.add(value)
        elif kind == "grant":
            grant = value
        else:
            raise AssertionError(f"unknown caller item {item!r}")
    return Principal("tenant-1", "agent-1", roles=frozenset(roles), groups=frozenset(groups)), grant


def _command(text: str, target: Target) -> Classification:
    if text.startswith("sql: "):
        return classify_sql(text[5:], DIALECTS[target.engine])
    found = re.fullmatch(r"k8s ([a-z-]+): (\w+) ([\w/-]+)(?: in ([\w-]+))?", text)
    assert found, text
    risk, verb, resource, namespace = found.groups()
    resource, _, subresource = resource.partition("/")
    return Classification(Risk(risk), "as the Kubernetes guard classifies it", "kubernetes", f"{verb} {resource}",
                          {"verb": verb, "resource": resource, "namespace": namespace or "",
                           "subresource": subresource})


def test_example_policy_is_config_policy_yaml() -> None:
    assert _block_after("<!-- example-policy -->", "yaml") == (ROOT / "config" / "examples" / "policy.yaml").read_text()


def test_documented_version_is_the_real_one() -> None:
    version = Policy.load(ROOT / "config" / "examples" / "policy.yaml").version
    assert set(re.findall(r"sha256:[0-9a-f]{16}", DOC)) == {version}


def test_every_yaml_block_is_a_valid_policy_or_rule() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC, re.S)
    assert len(blocks) >= 5
    for block in blocks:
        if block.startswith("targets:"):
            continue
        text = block if "version:" in block else "version: 1\nrules:\n" + "".join(
            f"  {line}\n" for line in block.splitlines())
        Policy.from_text(text, "docs/policy.md block")


@pytest.mark.parametrize("row", _scenarios(), ids=lambda r: f"{r[1]}: {r[2][:40]}")
def test_scenario_decides_as_documented(row: list[str]) -> None:
    caller, target_name, command, decision, rule = row
    principal, grant_level = _caller(caller)
    target = _targets()[target_name]
    grants = [Grant.for_principal(principal, target.name, grant_level, datetime.now(UTC) + timedelta(hours=1),
                                  "g-doc")] if grant_level else []
    got = _policy().decide(principal, target, _command(command, target), grants=grants)
    effect, *notes = [part.strip() for part in decision.split(",")]
    assert got.effect == effect, got.trace
    assert got.rule_id == (None if rule == "(none)" else rule), got.trace
    for note in notes:
        if note.startswith("quorum "):
            assert got.approval is not None and got.approval.quorum == int(note.split()[1])
        elif note.startswith("max "):
            assert got.limits.max_rows == int(note.split()[1])
        else:
            raise AssertionError(f"unknown note {note!r}")
    if grant_level and got.effect == "allow":
        assert got.grant_id == "g-doc"


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_console_examples_print_what_the_page_shows(tmp_path: Path) -> None:
    code, out, _ = _run("policy", "check", str(ROOT / "config" / "examples" / "policy.yaml"))
    version = Policy.load(ROOT / "config" / "examples" / "policy.yaml").version
    assert code == 0 and out.splitlines()[0].endswith(f"version {version}")
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\nrules:\n  - id: a\n    effect: approve\n    when: {risk: [wirte]}\n"
                      "  - id: b\n    effect: allow\n    approval: {quorum: 1}\n")
    code, _, err = _run("policy", "check", str(broken))
    shown = DOC.split("$ python -m broker policy check broken.yaml\n", 1)[1].split("```", 1)[0]
    assert code == 1
    assert [line.split(": ", 1)[1] for line in err.splitlines()[1:]] == [
        line.split(": ", 1)[1] for line in shown.splitlines()[1:]]
    code, out, _ = _run("policy", "explain", "--policy", str(ROOT / "config" / "examples" / "policy.yaml"), "--role",
                        "Broker.Caller", "--target", "orders-db", "--label", "env=prod", "--label", "data=pii",
                        "--sql", "DELETE FROM orders", "--catalog", str(tmp_path / "none.yaml"))
    assert code == 0
    shown = DOC.split("--target orders-db --label env=prod --label data=pii --sql \"DELETE FROM orders\"\n", 1)[1]
    for line in shown.split("```", 1)[0].splitlines():
        if line.strip() != "...":
            assert line in out.splitlines(), line
