"""The Azure SQL engine, everything but the wire (no SQL Server runs here; docs/engines.md says
what that leaves untested): connection arguments and token authentication, the statement
wrapping, type rendering, error mapping, and the real pyodbc + unixODBC path up to the driver."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import struct
import uuid
from typing import Any

import pyodbc
import pytest

from broker.catalog import Target
from broker.problems import CommandFailed, TimedOut, Unavailable
from broker.secrets import SecretValue
from broker.targets import Command, ExecutionLimits, create_engine
from broker.targets.mssql import (
    END_READ,
    END_WRITE,
    SQL_COPT_SS_ACCESS_TOKEN,
    SQL_SS_TIMESTAMPOFFSET,
    AzureSqlEngine,
    access_token_struct,
    column_type_name,
    connect_arguments,
    connection_string,
    datetimeoffset,
    map_error,
    odbc_value,
    session_batch,
)

LIMITS = ExecutionLimits(max_rows=3, max_bytes=10_000, timeout_ms=2500)
MI_TARGET = Target(name="orders-sql", engine="mssql", connection={"host": "orders.database.windows.net",
                                                                   "database": "orders"},
                   credential={"source": "managed-identity", "scope": "https://database.windows.net/.default"})
KV_TARGET = Target(name="crm-sql", engine="mssql", connection={"host": "crm.database.windows.net", "port": 1444,
                                                               "database": "crm"},
                   credential={"source": "key-vault", "secret": "crm-sql-reader"})
DRIVER = "ODBC Driver 18 for SQL Server"


def _attributes(conn_str: str) -> dict[str, str]:
    """Parse an ODBC connection string the way the driver manager does (braced values may hold ';')."""
    out, i = {}, 0
    while i < len(conn_str):
        key_end = conn_str.index("=", i)
        key = conn_str[i:key_end]
        i = key_end + 1
        if conn_str[i] == "{":
            value, i = "", i + 1
            while True:
                if conn_str[i] == "}" and conn_str[i + 1:i + 2] == "}":
                    value, i = value + "}", i + 2
                elif conn_str[i] == "}":
                    i += 1
                    break
                else:
                    value, i = value + conn_str[i], i + 1
        else:
            end = conn_str.find(";", i)
            end = len(conn_str) if end < 0 else end
            value, i = conn_str[i:end], end
        out[key] = value
        i += 1  # the ';'
    return out


# --- connection arguments -------------------------------------------------------------------------
def test_managed_identity_sends_an_access_token_and_no_password() -> None:
    conn_str, attrs = connect_arguments(MI_TARGET, SecretValue("eyJ0eXAi.token", "exp-1"), DRIVER, read_only=True)
    fields = _attributes(conn_str)
    assert "UID" not in fields and "PWD" not in fields
    assert attrs == {SQL_COPT_SS_ACCESS_TOKEN: access_token_struct("eyJ0eXAi.token")}
    assert fields["Driver"] == DRIVER and fields["Server"] == "tcp:orders.database.windows.net,1433"
    assert fields["Encrypt"] == "yes" and fields["TrustServerCertificate"] == "no"
    assert fields["ApplicationIntent"] == "ReadOnly" and fields["Database"] == "orders"


def test_sql_authentication_from_key_vault_cannot_inject_attributes() -> None:
    evil = 'p;w}d=x;Driver={Evil};TrustServerCertificate=yes'
    secret = SecretValue(json.dumps({"username": "broker_reader", "password": evil}))
    conn_str, attrs = connect_arguments(KV_TARGET, secret, DRIVER, read_only=False)
    fields = _attributes(conn_str)
    assert attrs == {}
    assert fields["UID"] == "broker_reader" and fields["PWD"] == evil
    assert fields["Driver"] == DRIVER and fields["TrustServerCertificate"] == "no"
    assert fields["ApplicationIntent"] == "ReadWrite" and fields["Server"] == "tcp:crm.database.windows.net,1444"


def test_access_token_struct_is_length_prefixed_utf16() -> None:
    packed = access_token_struct("ab")
    assert packed == struct.pack("<I", 4) + "ab".encode("utf-16-le")
    assert odbc_value("a}b") == "{a}}b}"


def test_connection_string_honours_trust_and_timeout_overrides() -> None:
    local = Target(name="local-sql", engine="mssql", credential={"source": "key-vault", "secret": "x"},
                   connection={"host": "127.0.0.1", "database": "d", "trust_server_certificate": True,
                               "connect_timeout": 9})
    fields = _attributes(connection_string(local, DRIVER, read_only=True))
    assert fields["TrustServerCertificate"] == "yes" and fields["Connection Timeout"] == "9"


# --- statement wrapping ---------------------------------------------------------------------------
def test_read_batch_uses_snapshot_and_a_transaction_that_is_rolled_back() -> None:
    batch = session_batch(ExecutionLimits(timeout_ms=2500), read_only=True)
    assert "SET TRANSACTION ISOLATION LEVEL SNAPSHOT" in batch and batch.endswith("BEGIN TRANSACTION")
    assert "SET XACT_ABORT ON" in batch and "SET LOCK_TIMEOUT 2500" in batch
    assert "SET QUOTED_IDENTIFIER ON" in batch and "SET IMPLICIT_TRANSACTIONS OFF" in batch
    assert "READ COMMITTED" in session_batch(ExecutionLimits(), read_only=False)
    assert "ROLLBACK" in END_READ and "COMMIT" in END_WRITE


class RecordingConnection:
    """A DB-API connection that records what the engine sends (the wire is SQL Server's)."""

    def __init__(self, description: Any = None, rows: list[tuple[Any, ...]] | None = None,
                 fail_on: str | None = None, rowcount: int = -1) -> None:
        self.sent: list[str] = []
        self.timeout = 0
        self.closed = False
        self.cancelled = False
        self.converters: dict[int, Any] = {}
        self._description, self._rows, self._fail_on, self._rowcount = description, rows or [], fail_on, rowcount
        self.description: Any = None

    def add_output_converter(self, sql_type: int, func: Any) -> None:
        self.converters[sql_type] = func

    def cursor(self) -> RecordingConnection:
        return self

    def execute(self, sql: str) -> RecordingConnection:
        self.sent.append(sql)
        if self._fail_on and self._fail_on in sql:
            raise pyodbc.ProgrammingError("42000", "[42000] [Microsoft][ODBC Driver 18 for SQL Server][SQL Server]"
                                                   "Invalid object name 'nope'. (208) (SQLExecDirectW)")
        is_agent = not sql.startswith(("SET XACT_ABORT", "IF @@TRANCOUNT"))
        self.description = self._description if is_agent else None
        self.rowcount = self._rowcount if is_agent else -1
        self._pending = list(self._rows) if is_agent else []
        return self

    def fetchmany(self, size: int) -> list[tuple[Any, ...]]:
        batch, self._pending = self._pending[:size], self._pending[size:]
        return batch

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self.fetchmany(len(self._pending))

    def cancel(self) -> None:
        self.cancelled = True

    def close(self) -> None:
        self.closed = True


def _engine(*connections: RecordingConnection, record: list[tuple[str, Any]] | None = None) -> AzureSqlEngine:
    queue = list(connections)

    def connect(conn_str: str, attrs_before: Any = None, autocommit: bool = False, timeout: int = 0) -> Any:
        assert autocommit is True, "the engine manages transactions itself"
        if record is not None:
            record.append((conn_str, attrs_before))
        return queue.pop(0)

    return AzureSqlEngine(connect=connect, drivers=lambda: [DRIVER])


DESC = [("id", int, None, 10, 10, 0, False), ("name", str, None, 50, 50, 0, True)]


def test_read_sends_batch_statement_rollback_and_pools_the_connection() -> None:
    conn = RecordingConnection(DESC, [(1, "a"), (2, "b")])
    record: list[tuple[str, Any]] = []
    engine = _engine(conn, record=record)
    result = engine.execute(MI_TARGET, Command("sql", sql="SELECT id, name FROM t"), SecretValue("tok", "exp-1"),
                            LIMITS, read_only=True)
    assert conn.sent == [session_batch(LIMITS, True), "SELECT id, name FROM t", END_READ]
    assert result.rows == [[1, "a"], [2, "b"]] and not result.truncated
    assert [(c.name, c.type) for c in result.columns] == [("id", "int"), ("name", "nvarchar")]
    assert conn.timeout == 3 and SQL_SS_TIMESTAMPOFFSET in conn.converters
    assert not conn.closed  # clean read: back to the pool, reused by the next read
    engine.execute(MI_TARGET, Command("sql", sql="SELECT 1"), SecretValue("tok", "exp-1"), LIMITS, read_only=True)
    assert len(record) == 1 and record[0][1] == {SQL_COPT_SS_ACCESS_TOKEN: access_token_struct("tok")}


def test_capped_read_cancels_and_discards_the_connection() -> None:
    conn = RecordingConnection(DESC, [(i, "x") for i in range(10)])
    result = _engine(conn).execute(MI_TARGET, Command("sql", sql="SELECT * FROM t"), SecretValue("tok"), LIMITS,
                                   read_only=True)
    assert result.row_count == 3 and result.truncated
    assert conn.cancelled and conn.closed and conn.sent[-1] == END_READ


def test_write_commits_and_never_returns_to_the_pool() -> None:
    conn = RecordingConnection(None, rowcount=4)
    record: list[tuple[str, Any]] = []
    result = _engine(conn, record=record).execute(
        KV_TARGET, Command("sql", sql="UPDATE t SET a = 1 WHERE b = 2"),
        SecretValue(json.dumps({"username": "u", "password": "p"})), LIMITS, read_only=False)
    assert conn.sent == [session_batch(LIMITS, False), "UPDATE t SET a = 1 WHERE b = 2", END_WRITE]
    assert result.affected == 4 and conn.closed
    assert _attributes(record[0][0])["ApplicationIntent"] == "ReadWrite" and record[0][1] is None


def test_a_failing_statement_is_mapped_and_its_connection_discarded() -> None:
    conn = RecordingConnection(fail_on="nope")
    with pytest.raises(CommandFailed) as failed:
        _engine(conn).execute(MI_TARGET, Command("sql", sql="SELECT * FROM nope"), SecretValue("tok"), LIMITS,
                              read_only=True)
    assert failed.value.code == "query_failed" and failed.value.extra["native_error"] == 208
    assert failed.value.detail == "SQL Server refused the command: Invalid object name 'nope'."
    assert conn.closed


def test_a_missing_odbc_driver_is_a_precise_error_through_the_real_driver_manager() -> None:
    """pyodbc and unixODBC for real: only Microsoft's driver itself is absent here."""
    engine = AzureSqlEngine(drivers=lambda: [DRIVER])  # claims the driver exists; the driver manager disagrees
    with pytest.raises(Unavailable) as missing:
        engine.execute(MI_TARGET, Command("sql", sql="SELECT 1"), SecretValue("tok"), LIMITS, read_only=True)
    assert missing.value.code == "engine_unavailable"
    with pytest.raises(Unavailable) as none:
        create_engine("mssql").driver(MI_TARGET)  # the real list of installed drivers is empty here
    assert none.value.code == "engine_unavailable"
    assert "ODBC Driver 18" in (create_engine("mssql").unavailable_reason() or "")


def test_availability_follows_the_installed_drivers_and_the_driver_manager(monkeypatch: pytest.MonkeyPatch) -> None:
    assert AzureSqlEngine(drivers=lambda: [DRIVER]).unavailable_reason() is None
    assert AzureSqlEngine(drivers=lambda: ["ODBC Driver 17 for SQL Server"]).unavailable_reason() is None
    assert "not installed" in (AzureSqlEngine(drivers=lambda: ["FreeTDS"]).unavailable_reason() or "")
    monkeypatch.setitem(__import__("sys").modules, "pyodbc", None)  # libodbc missing: the import fails
    engine = AzureSqlEngine()
    assert "unixODBC" in (engine.unavailable_reason() or "")
    with pytest.raises(Unavailable) as missing:
        engine.execute(MI_TARGET, Command("sql", sql="SELECT 1"), SecretValue("tok"), LIMITS, read_only=True)
    assert missing.value.code == "engine_unavailable"


def test_driver_choice_prefers_18_then_17_unless_the_catalog_names_one() -> None:
    assert AzureSqlEngine(drivers=lambda: ["ODBC Driver 17 for SQL Server", DRIVER]).driver(MI_TARGET) == DRIVER
    assert AzureSqlEngine(drivers=lambda: ["ODBC Driver 17 for SQL Server"]).driver(MI_TARGET).endswith("17 for "
                                                                                                       "SQL Server")
    named = Target(name="x", engine="mssql", credential={"source": "key-vault", "secret": "x"},
                   connection={"host": "x.database.windows.net", "driver": "FreeTDS"})
    assert AzureSqlEngine(drivers=lambda: []).driver(named) == "FreeTDS"


# --- values ---------------------------------------------------------------------------------------
def test_datetimeoffset_converts_to_an_aware_datetime() -> None:
    raw = struct.pack("<6hI2h", 2024, 2, 29, 23, 59, 58, 123456789, -5, -30)
    value = datetimeoffset(raw)
    assert value == dt.datetime(2024, 2, 29, 23, 59, 58, 123456,
                                tzinfo=dt.timezone(-dt.timedelta(hours=5, minutes=30)))
    assert value.isoformat() == "2024-02-29T23:59:58.123456-05:30"
    assert datetimeoffset(None) is None


def test_rows_render_as_faithful_json() -> None:
    desc = [("amount", decimal.Decimal, None, 19, 19, 4, True), ("at", dt.datetime, None, 27, 27, 7, True),
            ("raw", bytes, None, 8, 8, 0, True), ("id", uuid.UUID, None, 36, 36, 0, True),
            ("flag", bool, None, 1, 1, 0, True)]
    row = (decimal.Decimal("12345678901234.5678"), dt.datetime(2024, 1, 2, 3, 4, 5, 600000), b"\x00\xff",
           "6F9619FF-8B86-D011-B42D-00C04FC964FF", True)
    conn = RecordingConnection(desc, [row])
    result = _engine(conn).execute(MI_TARGET, Command("sql", sql="SELECT 1"), SecretValue("tok"), LIMITS,
                                   read_only=True)
    assert result.rows == [["12345678901234.5678", "2024-01-02T03:04:05.600000", "AP8=",
                            "6F9619FF-8B86-D011-B42D-00C04FC964FF", True]]
    assert [c.type for c in result.columns] == ["decimal", "datetime2", "varbinary", "uniqueidentifier", "bit"]
    assert column_type_name(float) == "float"


# --- errors ---------------------------------------------------------------------------------------
def _odbc(kind: type[Exception], state: str, text: str) -> Exception:
    return kind(state, f"[{state}] [Microsoft][ODBC Driver 18 for SQL Server][SQL Server]{text}")


@pytest.mark.parametrize(("error", "connecting", "kind", "code"), [
    (_odbc(pyodbc.OperationalError, "HYT00", "Query timeout expired (0) (SQLExecDirectW)"), False, TimedOut,
     "statement_timeout"),
    (_odbc(pyodbc.ProgrammingError, "HY000", "Lock request time out period exceeded. (1222) (SQLExecDirectW)"),
     False, TimedOut, "statement_timeout"),
    (_odbc(pyodbc.ProgrammingError, "42000", "Failed to update database \"orders\" because the database is "
                                             "read-only. (3906) (SQLExecDirectW)"), False, CommandFailed,
     "read_only_violation"),
    (_odbc(pyodbc.InterfaceError, "28000", "Login failed for user '<token-identified principal>'. (18456) "
                                           "(SQLDriverConnect)"), True, Unavailable, "target_auth_failed"),
    (_odbc(pyodbc.OperationalError, "08001", "TCP Provider: Error code 0x2749 (10057) (SQLDriverConnect)"), True,
     Unavailable, "target_unavailable"),
    (pyodbc.Error("01000", "[01000] [unixODBC][Driver Manager]Can't open lib 'ODBC Driver 18 for SQL Server' : "
                           "file not found (0) (SQLDriverConnect)"), True, Unavailable, "engine_unavailable"),
    (_odbc(pyodbc.ProgrammingError, "42000", "Snapshot isolation transaction failed accessing database 'orders' "
                                             "because snapshot isolation is not allowed. (3952) (SQLExecDirectW)"),
     False, Unavailable, "target_misconfigured"),
    (_odbc(pyodbc.IntegrityError, "23000", "Violation of PRIMARY KEY constraint 'pk'. The duplicate key value is "
                                           "(42). (2627) (SQLExecDirectW)"), False, CommandFailed, "query_failed"),
    (_odbc(pyodbc.ProgrammingError, "42000", "The EXECUTE permission was denied on the object 'p'. (229) "
                                             "(SQLExecDirectW)"), False, CommandFailed, "query_failed"),
])
def test_errors_map_to_the_catalogue(error: Exception, connecting: bool, kind: type, code: str) -> None:
    mapped = map_error(error, MI_TARGET, LIMITS, connecting=connecting)
    assert isinstance(mapped, kind) and mapped.code == code, mapped.detail
    assert "[Microsoft]" not in mapped.detail


def test_duplicate_key_message_keeps_the_value_for_masking_downstream() -> None:
    error = _odbc(pyodbc.IntegrityError, "23000", "Violation of PRIMARY KEY constraint 'pk'. The duplicate key "
                                                  "value is (42). (2627) (SQLExecDirectW)")
    mapped = map_error(error, MI_TARGET, LIMITS, connecting=False)
    assert mapped.detail.endswith("The duplicate key value is (42).")
    assert mapped.extra == {"native_error": 2627, "sqlstate": "23000"}


def test_engine_classifies_as_tsql() -> None:
    engine = create_engine("mssql")
    assert engine.dialect == "tsql"
    assert engine.classify(Command("sql", sql="SELECT 1\nGO\nDROP TABLE t")).risk.value == "unknown"
    assert engine.classify(Command("sql", sql="SELECT TOP 5 * FROM t WITH (NOLOCK)")).read_only
