"""``python -m broker targets check`` as an operator runs it against the dev stack: the demo role
has none of the server-side limits, so each is reported with the statement that sets it; a wrong
name or a broken catalogue is exit 2 with the reason, never a traceback."""

from __future__ import annotations

import json

import pytest

from tests.e2e.test_cli import broker_cli, broker_cli_in_process


@pytest.fixture(scope="module")
def operator_env(stack) -> dict[str, str]:
    return {k: v for k, v in stack.env.items()
            if k.startswith(("BROKER_", "IDENTITY_")) or k in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")}


def test_every_target_is_checked_and_the_demo_role_is_missing_its_limits(operator_env):
    r = broker_cli("targets", "check", "--json", env=operator_env, timeout=120)
    assert r.returncode == 1, r.stderr
    report = json.loads(r.stdout)
    assert report["ready"] is False
    assert {"demo-postgres", "demo-k8s"} <= set(report["targets"])
    pg = {c["item"]: c for c in report["targets"]["demo-postgres"]}
    assert pg["reachable"]["ok"] and pg["engine"]["value"] == "postgres"
    for item in ("statement_timeout", "idle_in_transaction_session_timeout", "temp_file_limit", "connection limit"):
        assert pg[item]["ok"] is False and pg[item]["advice"].startswith("ALTER ROLE"), pg[item]
    assert "connection.sslmode" not in pg  # a loopback host needs no TLS
    k8s = {c["item"]: c for c in report["targets"]["demo-k8s"]}
    assert k8s["reachable"]["ok"] and "statement_timeout" not in k8s


def test_the_text_report_names_what_is_missing_and_how_to_set_it():
    from broker.cli.targets import Check, render

    text = render({"orders-db": [Check("reachable", True, "yes"),
                                 Check("temp_file_limit", False, "-1 (unlimited)",
                                       "ALTER ROLE \"r\" SET temp_file_limit = '1GB';")],
                   "k8s": [Check("reachable", True, "yes")]})
    lines = text.splitlines()
    assert lines[0] == "orders-db: 1 missing" and "k8s: ready" in lines
    assert any(line.split()[:2] == ["MISSING", "temp_file_limit"] for line in lines)
    assert lines[lines.index(next(line for line in lines if "MISSING" in line)) + 1].strip().startswith("ALTER ROLE")


def test_a_wrong_name_or_a_broken_catalogue_is_exit_2(operator_env, tmp_path):
    r = broker_cli("targets", "check", "demo-postgres", "no-such-target", env=operator_env, timeout=120)
    assert r.returncode == 2 and "no-such-target" in r.stderr and "unknown_target" in r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""  # nothing half-checked
    bad = tmp_path / "catalog.yaml"
    bad.write_text("targets:\n  db:\n    engine: postgres\n    credential: {source: key-vault, secret: 'a b'}\n")
    r = broker_cli("targets", "check", env={**operator_env, "BROKER_CATALOG_PATH": str(bad)}, timeout=120)
    assert r.returncode == 2 and "invalid catalog" in r.stderr and "secret" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("connection, field", [
    ("{hots: db.internal}", "connection.hots"),  # a typo never falls back to the default host
    ("{host: db.internal, port: '5432'}", "connection.port"),
    ("{host: db.internal, sslmode: verify_full}", "connection.sslmode"),
])
def test_connection_settings_that_do_not_fit_the_engine_are_exit_2(operator_env, tmp_path, connection, field):
    """In-process (the real process's exit 2 on a broken catalogue is proven above)."""
    bad = tmp_path / "catalog.yaml"
    bad.write_text("targets:\n  orders-db:\n    engine: postgres\n    credential: {source: key-vault, secret: s}\n"
                   f"    connection: {connection}\n")
    r = broker_cli_in_process("targets", "check", env={**operator_env, "BROKER_CATALOG_PATH": str(bad)})
    assert r.returncode == 2 and "invalid catalog" in r.stderr
    assert "orders-db" in r.stderr and field in r.stderr and "Traceback" not in r.stderr
