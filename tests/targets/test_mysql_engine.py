"""The MySQL/MariaDB engine against a real MariaDB: faithful JSON types, row and byte caps, the
statement time limit, a pinned session that no statement can leave behind, and precise errors."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import time

import pytest
from pymysql.constants import CLIENT, FIELD_TYPE

from broker.catalog import Target
from broker.problems import CommandFailed, TimedOut, Unavailable
from broker.secrets import SecretValue
from broker.targets import Command, ExecutionLimits, create_engine
from broker.targets.mysql import SQL_MODE, column_type_name, connect_arguments, render_value, session_statements

pytestmark = pytest.mark.mariadb
LIMITS = ExecutionLimits(max_rows=100, max_bytes=100_000, timeout_ms=3000)


@pytest.fixture(scope="module")
def engine():
    engine = create_engine("mysql")
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def typed(maria):
    with maria.server.admin("demo") as admin, admin.cursor() as cur:
        cur.execute("""CREATE TABLE typed (
            id INT PRIMARY KEY, big BIGINT UNSIGNED, price DECIMAL(20,6), ratio DOUBLE, flag BIT(3), born DATE,
            seen DATETIME(6), stamp TIMESTAMP(3) NULL, span TIME, doc JSON, raw VARBINARY(8), name VARCHAR(40),
            kind ENUM('a','b'), note TEXT, nothing INT NULL)""")
        cur.execute("""INSERT INTO typed VALUES (1, 18446744073709551615, 12345678901234.123456, 0.1, b'101',
            '2024-02-29', '2024-02-29 23:59:59.123456', '2024-03-01 12:00:00.250', '-838:59:59',
            '{"a": [1, 2.5, "x"], "b": null}', X'00FF10', 'Zoë 🚀', 'b', 'long text', NULL)""")
        cur.execute("CREATE TABLE many (n INT PRIMARY KEY, pad VARCHAR(100))")
        cur.executemany("INSERT INTO many VALUES (%s, %s)", [(i, "x" * 100) for i in range(1, 1001)])
    return maria


def run(engine, db, sql, *, limits=LIMITS, read_only=True, secret=None):
    return engine.execute(db.target, Command("sql", sql=sql), secret or db.writer, limits, read_only=read_only)


def test_values_come_back_as_faithful_json(engine, typed) -> None:
    result = run(engine, typed, "SELECT * FROM typed")
    row = dict(zip([c.name for c in result.columns], result.rows[0], strict=True))
    assert row["big"] == 18446744073709551615  # exact, no float rounding
    assert row["price"] == "12345678901234.123456"  # decimals as strings, every digit kept
    assert row["ratio"] == 0.1
    assert row["flag"] == 5  # BIT as its integer value
    assert row["born"] == "2024-02-29"
    assert row["seen"] == "2024-02-29T23:59:59.123456"  # DATETIME has no zone: none is invented
    assert row["stamp"] == "2024-03-01T12:00:00.250000+00:00"  # TIMESTAMP: the session is pinned to UTC
    assert row["span"] == "-P34DT82799S"  # TIME is a duration: -838:59:59
    assert row["doc"] == '{"a": [1, 2.5, "x"], "b": null}'  # MariaDB's JSON is LONGTEXT: the text, unchanged
    assert row["raw"] == "AP8Q"  # binary as base64
    assert row["name"] == "Zoë 🚀"
    assert row["kind"] == "b"
    assert row["nothing"] is None
    types = {c.name: c.type for c in result.columns}
    assert types["raw"] == "varbinary" and types["name"] == "varchar" and types["note"] == "text"
    assert types["stamp"] == "timestamp" and types["price"] == "decimal"
    assert result.truncated is False


def test_row_cap_truncates_and_the_connection_is_not_reused_dirty(engine, typed) -> None:
    capped = run(engine, typed, "SELECT n FROM many ORDER BY n", limits=ExecutionLimits(10, 100_000, 3000))
    assert capped.row_count == 10 and capped.truncated
    assert [r[0] for r in capped.rows] == list(range(1, 11))
    after = run(engine, typed, "SELECT COUNT(*) FROM many")
    assert after.rows == [[1000]]


def test_byte_cap_truncates(engine, typed) -> None:
    capped = run(engine, typed, "SELECT pad FROM many", limits=ExecutionLimits(1000, 2048, 3000))
    assert capped.truncated and 0 < capped.row_count < 25 and capped.bytes <= 2048 + 120


def test_statement_time_limit_cancels_a_long_read(engine, typed) -> None:
    started = time.monotonic()
    with pytest.raises(TimedOut) as timed_out:
        run(engine, typed, "SELECT SLEEP(10)", limits=ExecutionLimits(10, 10_000, 300))
    assert timed_out.value.code == "statement_timeout"
    assert time.monotonic() - started < 3


def test_a_write_commits_when_allowed(engine, typed) -> None:
    result = run(engine, typed, "UPDATE many SET pad = 'y' WHERE n = 1", read_only=False)
    assert result.affected == 1
    assert run(engine, typed, "SELECT pad FROM many WHERE n = 1").rows == [["y"]]


def test_no_statement_leaves_session_state_behind(engine, typed) -> None:
    run(engine, typed, "SET SESSION sql_mode = 'ANSI_QUOTES,NO_BACKSLASH_ESCAPES'", read_only=False)
    run(engine, typed, "SET SESSION TRANSACTION READ WRITE", read_only=False)
    for _ in range(3):  # whichever pooled connection answers, it is pinned again
        assert run(engine, typed, "SELECT @@SESSION.sql_mode").rows == [[SQL_MODE]]
        with pytest.raises(CommandFailed) as refused:
            run(engine, typed, "DELETE FROM many WHERE n = 2")
        assert refused.value.code == "read_only_violation"


def test_wrong_password_and_unreachable_server_are_unavailable(engine, typed) -> None:
    bad = SecretValue(json.dumps({"username": "writer", "password": "wrong"}), version="bad")
    with pytest.raises(Unavailable) as auth:
        run(engine, typed, "SELECT 1", secret=bad)
    assert auth.value.code == "target_auth_failed"
    nowhere = Target(name="nowhere", engine="mysql", credential={"source": "key-vault", "secret": "x"},
                     connection={"host": "127.0.0.1", "port": 9, "connect_timeout": 2})
    with pytest.raises(Unavailable) as down:
        engine.execute(nowhere, Command("sql", sql="SELECT 1"), typed.writer, LIMITS, read_only=True)
    assert down.value.code == "target_unavailable"


def test_errors_name_the_server_error(engine, typed) -> None:
    with pytest.raises(CommandFailed) as failed:
        run(engine, typed, "SELECT * FROM no_such_table")
    assert failed.value.code == "query_failed" and failed.value.extra["errno"] == 1146


def test_check_reaches_the_target(engine, typed) -> None:
    engine.check(typed.target, typed.reader)


def test_engine_classifies_as_mysql(engine) -> None:
    assert engine.dialect == "mysql"
    assert engine.classify(Command("sql", sql="SELECT 1 /*! , SLEEP(1) */")).risk.value == "unknown"


# --- without the server -------------------------------------------------------------------------
def test_connect_arguments_never_enable_multi_statements_or_local_files() -> None:
    target = Target(name="t", engine="mysql", credential={"source": "key-vault", "secret": "x"},
                    connection={"host": "db.example", "port": 3307, "database": "app",
                                "tls": {"ca": "/etc/ssl/ca.pem"}})
    args = connect_arguments(target, SecretValue('{"username": "u", "password": "p"}'))
    assert args["client_flag"] & (CLIENT.MULTI_STATEMENTS | CLIENT.LOCAL_FILES) == 0
    assert args["local_infile"] is False and args["autocommit"] is False
    assert (args["host"], args["port"], args["database"], args["user"], args["password"]) == (
        "db.example", 3307, "app", "u", "p")
    assert args["ssl_ca"] == "/etc/ssl/ca.pem" and args["ssl_verify_cert"] and args["ssl_verify_identity"]
    plain = connect_arguments(Target(name="t", engine="mysql", credential={"source": "key-vault", "secret": "x"},
                                     connection={"username": "bob"}), SecretValue("only-a-password"))
    assert plain["user"] == "bob" and plain["password"] == "only-a-password" and plain["ssl_disabled"]


def test_mysql_native_json_and_bit_render_as_values() -> None:
    assert render_value(FIELD_TYPE.JSON, '{"a": [1, null]}') == {"a": [1, None]}  # MySQL 8's JSON type
    assert render_value(FIELD_TYPE.JSON, "not json") == "not json"
    assert render_value(FIELD_TYPE.BIT, b"\x01\x00") == 256
    assert render_value(FIELD_TYPE.TIMESTAMP, dt.datetime(2024, 1, 1, 8, 30)) == "2024-01-01T08:30:00+00:00"
    assert render_value(FIELD_TYPE.NEWDECIMAL, decimal.Decimal("1.10")) == "1.10"
    assert column_type_name(FIELD_TYPE.BLOB, 63) == "blob" and column_type_name(FIELD_TYPE.BLOB, 45) == "text"
    assert column_type_name(FIELD_TYPE.STRING, 63) == "binary"


def test_session_statements_pin_mode_zone_and_time_limit() -> None:
    maria = session_statements(True, ExecutionLimits(timeout_ms=1500), read_only=True)
    assert [s for s, _ in maria][1:] == ["SET SESSION TRANSACTION READ ONLY", "START TRANSACTION READ ONLY"]
    assert "max_statement_time" in maria[0][0] and maria[0][1] == (SQL_MODE, 2, 1.5)
    mysql = session_statements(False, ExecutionLimits(timeout_ms=1500), read_only=False)
    assert "max_execution_time" in mysql[0][0] and mysql[0][1] == (SQL_MODE, 2, 1500)
    assert mysql[2][0] == "START TRANSACTION READ WRITE"
    assert "ANSI_QUOTES" not in SQL_MODE and "NO_BACKSLASH_ESCAPES" not in SQL_MODE


@pytest.mark.parametrize("read_only", [True, False])
def test_a_connection_killed_mid_statement_is_the_target_failing_not_the_command(engine, typed, read_only) -> None:
    """An operator's ``KILL CONNECTION`` (or a server going down) under a running statement: 503
    target_unavailable, so the agent may retry; never 422 query_failed. The write was rolled back."""
    import threading

    def kill() -> None:
        deadline = time.monotonic() + 5
        with typed.server.admin() as admin, admin.cursor() as cur:
            while time.monotonic() < deadline:
                cur.execute("SELECT id FROM information_schema.processlist WHERE info LIKE '%SLEEP(5)%' "
                            "AND info NOT LIKE '%processlist%'")
                row = cur.fetchone()
                if row:
                    cur.execute(f"KILL CONNECTION {int(row[0])}")
                    return
                time.sleep(0.02)

    killer = threading.Thread(target=kill)
    killer.start()
    sql = ("SELECT SLEEP(5)" if read_only else
           "INSERT INTO many SELECT 9000 + n, 'killed' FROM many WHERE n < 4 AND SLEEP(5) = 0")
    with pytest.raises(Unavailable) as err:
        run(engine, typed, sql, read_only=read_only, limits=ExecutionLimits(10, 10_000, 8000))
    killer.join()
    assert err.value.code == "target_unavailable"
    assert run(engine, typed, "SELECT count(*) FROM many WHERE n >= 9000").rows == [[0]]
