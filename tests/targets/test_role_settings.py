"""``targets check``'s reading of the broker's role on the real servers: a role without limits is
reported missing each one (with the statement that sets it); the same role with them set is ready.
The values are read as a new session of the role sees them, not as the broker's own SETs leave them."""

from __future__ import annotations

import json
import secrets

import pytest

from broker.secrets import SecretValue
from broker.targets import ExecutionLimits
from broker.targets.mysql import MySQLEngine
from broker.targets.postgres import PostgresEngine
from broker.targets.role_check import mysql_settings, postgres_settings


def _secret(user: str, password: str) -> SecretValue:
    return SecretValue(json.dumps({"username": user, "password": password}), version=f"v-{user}-{password[:4]}")


def verdicts(settings) -> dict[str, bool]:
    return {s.name: s.ok for s in settings}


@pytest.fixture(scope="module")
def pg_role(pg):
    password = secrets.token_urlsafe(12)
    with pg.server.admin() as admin:
        admin.execute(f"CREATE ROLE limits_probe LOGIN PASSWORD '{password}'")
    yield pg, _secret("limits_probe", password)
    with pg.server.admin() as admin:
        admin.execute("DROP ROLE limits_probe")


def test_a_postgres_role_without_limits_is_missing_each_one(pg_role):
    pg, secret = pg_role
    engine = PostgresEngine(pool_max_size=1)
    try:
        # the broker's own SET LOCAL limits on a pooled connection must not pass for the role's
        engine.execute(pg.target, _select(), secret, ExecutionLimits(timeout_ms=3000), read_only=True)
        settings = engine.role_settings(pg.target, secret, connections_needed=5)
    finally:
        engine.close()
    assert verdicts(settings) == {"statement_timeout": False, "idle_in_transaction_session_timeout": False,
                                  "temp_file_limit": False, "work_mem": False, "connection limit": False}
    advice = {s.name: s.advice for s in settings}
    assert advice["temp_file_limit"].startswith('ALTER ROLE "limits_probe" SET temp_file_limit')
    assert "CONNECTION LIMIT 5" in advice["connection limit"]


def test_a_postgres_role_with_its_limits_set_is_ready(pg_role):
    pg, secret = pg_role
    with pg.server.admin() as admin:
        for sql in ["ALTER ROLE limits_probe SET statement_timeout = '60s'",
                    "ALTER ROLE limits_probe SET idle_in_transaction_session_timeout = '30s'",
                    "ALTER ROLE limits_probe SET temp_file_limit = '1GB'",
                    "ALTER ROLE limits_probe IN DATABASE demo SET work_mem = '16MB'",
                    "ALTER ROLE limits_probe CONNECTION LIMIT 5"]:
            admin.execute(sql)
    engine = PostgresEngine(pool_max_size=1)
    try:
        settings = engine.role_settings(pg.target, secret, connections_needed=5)
        assert all(s.ok for s in settings), settings
        assert {s.name: s.value for s in settings}["work_mem"] == "16384 kB (database user)"
        assert not engine.role_settings(pg.target, secret, connections_needed=6)[-1].ok  # 5 < 6
    finally:
        engine.close()
        with pg.server.admin() as admin:
            admin.execute("ALTER ROLE limits_probe RESET ALL")
            admin.execute("ALTER ROLE limits_probe IN DATABASE demo RESET ALL")


@pytest.fixture(scope="module")
def maria_account(maria):
    password = secrets.token_urlsafe(12)
    with maria.server.admin() as admin, admin.cursor() as cur:
        cur.execute(f"CREATE USER 'limits_probe'@'127.0.0.1' IDENTIFIED BY '{password}'")
        cur.execute("GRANT SELECT ON demo.* TO 'limits_probe'@'127.0.0.1'")
    yield maria, _secret("limits_probe", password)
    with maria.server.admin() as admin, admin.cursor() as cur:
        cur.execute("DROP USER 'limits_probe'@'127.0.0.1'")


def test_a_mariadb_account_without_and_with_its_limits(maria_account):
    maria, secret = maria_account
    engine = MySQLEngine(pool_max_size=1)
    try:
        # leaves a pooled connection whose session carries the broker's max_statement_time
        engine.execute(maria.target, _select(), secret, ExecutionLimits(timeout_ms=3000), read_only=True)
        assert verdicts(engine.role_settings(maria.target, secret, 5)) == {
            "max_statement_time": False, "max_user_connections": False}
        with maria.server.admin() as admin, admin.cursor() as cur:
            cur.execute("ALTER USER 'limits_probe'@'127.0.0.1' WITH MAX_STATEMENT_TIME 60 MAX_USER_CONNECTIONS 5")
        settings = engine.role_settings(maria.target, secret, 5)
        assert all(s.ok for s in settings), settings
        assert {s.name: s.value for s in settings} == {"max_statement_time": "60 s", "max_user_connections": "5"}
    finally:
        engine.close()


def test_the_verdicts_on_values_the_servers_can_report():
    rows = [("statement_timeout", "0", "ms", "default"), ("idle_in_transaction_session_timeout", "1000", "ms", "user"),
            ("temp_file_limit", "0", "kB", "user"), ("work_mem", "8", "MB", "user")]
    got = verdicts(postgres_settings("r", rows, 10, 5))
    assert got == {"statement_timeout": False, "idle_in_transaction_session_timeout": True,
                   "temp_file_limit": True, "work_mem": True, "connection limit": True}
    big = verdicts(postgres_settings("r", [("work_mem", "65537", "kB", "user")], -1, 5))
    assert not big["work_mem"] and not big["connection limit"]  # over 64 MB; unlimited connections
    assert not verdicts(postgres_settings("r", [("work_mem", "4096", "kB", "configuration file")], 9, 5))["work_mem"]
    assert verdicts(mysql_settings(False, {"max_execution_time": "60000", "max_user_connections": "4"}, 5)) == {
        "max_execution_time": True, "max_user_connections": False}


def _select():
    from broker.targets import Command

    return Command("sql", sql="SELECT 1")
