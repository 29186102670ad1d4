"""``python -m broker policy check|explain``: exit codes, messages, and what explain prints."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from broker.cli import main

ROOT = Path(__file__).resolve().parents[2]
DEV_POLICY = str(ROOT / "config" / "dev" / "policy.yaml")


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as exit_:  # argparse
            code = int(exit_.code or 0)
    return code, out.getvalue(), err.getvalue()


def test_check_reports_version_and_warnings(tmp_path: Path) -> None:
    lax = tmp_path / "lax.yaml"
    lax.write_text("version: 1\nrules:\n  - id: everyone-everything\n    effect: allow\n")
    code, out, _ = run("policy", "check", str(lax))
    assert code == 0
    assert "warning: rule everyone-everything: allows every caller" in out
    assert "allows every risk class, including destructive" in out
    assert run("policy", "check", "--strict", str(lax))[0] == 1
    code, out, _ = run("policy", "check", "--json", str(lax))
    body = json.loads(out)
    assert code == 0 and body["valid"] and body["rules"] == 1 and len(body["warnings"]) == 2


def test_check_fails_with_the_problems(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nrules:\n  - id: r\n    effect: approve\n")
    code, out, err = run("policy", "check", str(bad))
    assert code == 1 and out == "" and "rules[0]: 'approval' is a required property" in err
    code, out, _ = run("policy", "check", "--json", str(bad))
    assert code == 1 and json.loads(out)["valid"] is False


def test_dev_policy_has_no_warnings() -> None:
    code, out, _ = run("policy", "check", "--strict", DEV_POLICY)
    assert code == 0 and "warning" not in out


def test_explain_with_a_dev_identity(tmp_path: Path) -> None:
    args = ["policy", "explain", "--policy", DEV_POLICY, "--identity", "devin", "--target", "demo-postgres",
            "--catalog", str(tmp_path / "absent.yaml")]
    code, out, _ = run(*args, "--sql", "UPDATE customers SET name = 'x' WHERE id = 1")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["effect", "APPROVE"] and lines[1].split() == ["rule", "demo-writes-need-approval"]
    assert lines[2].startswith("policy version  sha256:")
    assert "approval        quorum 1 from groups dba-approvers" in out
    assert "  demo-writes-need-approval (approve): matches" in lines
    code, out, _ = run(*args, "--sql", "SELECT * FROM customers")
    assert "effect          ALLOW" in out
    code, out, _ = run(*args, "--sql", "UPDATE customers SET name = 'x' WHERE id = 1", "--grant", "write", "--json")
    decision = json.loads(out)["decision"]
    assert (decision["effect"], decision["grant_id"]) == ("allow", "cli-pretend")
    code, out, _ = run(*args, "--sql", "DROP TABLE customers")
    assert "effect          DENY" in out and "rule            (none: no rule matched)" in out


def test_explain_with_roles_labels_and_a_risk(tmp_path: Path) -> None:
    code, out, _ = run("policy", "explain", "--policy", str(ROOT / "config" / "examples" / "policy.yaml"), "--role",
                       "Broker.Caller", "--target", "aks-prod", "--engine", "kubernetes", "--label", "env=prod",
                       "--risk", "read-secret", "--catalog", str(tmp_path / "absent.yaml"))
    assert code == 0 and "rule            prod-secrets-oncall-only" in out


def test_explain_finds_the_target_in_the_catalog(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text("targets:\n  crm:\n    engine: mysql\n    labels: {env: prod}\n"
                       "    credential: {source: key-vault, secret: s}\n")
    code, out, _ = run("policy", "explain", "--policy", str(ROOT / "config" / "examples" / "policy.yaml"), "--role",
                       "Broker.Caller", "--target", "crm", "--catalog", str(catalog),
                       "--sql", "SELECT 1 /*! , SLEEP(1) */")
    assert code == 0 and "rule            never-unknown" in out and "MySQL executable comments" in out
    code, _, err = run("policy", "explain", "--policy", DEV_POLICY, "--role", "x", "--target", "crm",
                       "--catalog", str(catalog), "--label", "env=dev", "--sql", "SELECT 1")
    assert code == 1 and "--engine/--label only describe targets that are not" in err


@pytest.mark.parametrize(("extra", "message"), [
    (["--identity", "mallory"], "no dev identity 'mallory'"),
    ([], "say who is calling"),
    (["--role", "x", "--label", "novalue"], "--label wants KEY=VALUE"),
])
def test_explain_refuses_unclear_input(tmp_path: Path, extra: list[str], message: str) -> None:
    code, _, err = run("policy", "explain", "--policy", DEV_POLICY, "--target", "t", "--catalog",
                       str(tmp_path / "absent.yaml"), "--sql", "SELECT 1", *extra)
    assert code == 1 and message in err


def test_explain_refuses_an_unknown_risk(tmp_path: Path) -> None:
    code, _, err = run("policy", "explain", "--policy", DEV_POLICY, "--role", "x", "--target", "t", "--catalog",
                       str(tmp_path / "absent.yaml"), "--risk", "scary")
    assert code == 1 and "unknown risk class 'scary'" in err


@pytest.mark.parametrize("argv", [["policy", "--help"], ["policy", "check", "--help"],
                                  ["policy", "explain", "--help"], ["classify", "--help"]])
def test_every_command_has_help(argv: list[str]) -> None:
    code, out, _ = run(*argv)
    assert code == 0 and "usage:" in out
