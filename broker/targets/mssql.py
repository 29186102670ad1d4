"""Azure SQL Database (and SQL Server) through pyodbc and Microsoft's ODBC Driver 18 (or 17).

Why pyodbc, not pymssql: the broker reaches Azure SQL as its managed identity, with an Entra
access token. pymssql (FreeTDS DB-Library) has no way to pass one; Microsoft's ODBC driver takes
it as the ``SQL_COPT_SS_ACCESS_TOKEN`` connection attribute, which pyodbc sets before connecting.

Reads run on a connection with ``ApplicationIntent=ReadOnly`` (a readable secondary where the tier
has one: writes there fail with error 3906), under ``SNAPSHOT`` isolation (no shared locks, no
blocking), inside an explicit transaction that is always rolled back, so DML and transactional
DDL cannot outlive the call. Writes run ``READ COMMITTED`` and commit. Every round trip carries
one batch: the broker's own ``SET`` batch, then the agent's statement alone, then the end of the
transaction. TDS has no single-statement mode, so T-SQL batching is stopped by the classifier
and by the read-only database role (``docs/engines.md`` lists what else only they stop).
"""

from __future__ import annotations

import datetime as dt
import decimal
import logging
import math
import re
import struct
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from broker.catalog import ManagedIdentityCredential, Target
from broker.guard import Classification, Risk
from broker.guard.languages import SQL
from broker.guard.sql import classify_sql, escalate
from broker.guard.sql_rules import SqlFinding
from broker.guard.sql_tsql_resolve import ModuleResolver
from broker.lineage.schema import Schema, read_mssql
from broker.problems import BrokerError, CommandFailed, TimedOut, Unavailable
from broker.secrets import SecretValue
from broker.targets._pool import IdlePool, close_quietly, fetch_batches
from broker.targets._rows import collect_rows, parse_credential
from broker.targets.base import Column, Command, ExecutionLimits, ResultSet
from broker.targets.mssql_connection import AzureSqlConnection

log = logging.getLogger(__name__)

SQL_COPT_SS_ACCESS_TOKEN = 1256  # msodbcsql.h: an Entra access token instead of UID/PWD
SQL_SS_TIMESTAMPOFFSET = -155  # datetimeoffset, which pyodbc cannot convert by itself
DRIVERS = ("ODBC Driver 18 for SQL Server", "ODBC Driver 17 for SQL Server")
NO_DRIVER = ("The Microsoft ODBC Driver 18 (or 17) for SQL Server is not installed where the broker runs "
             "(see docs/engines.md: Azure SQL on Flex Consumption).")
NO_DRIVER_MANAGER = "unixODBC (libodbc), which pyodbc needs, is not installed where the broker runs."
AZURE_SQL_SCOPE = "https://database.windows.net/.default"

_TYPE_NAMES = {str: "nvarchar", bytes: "varbinary", bytearray: "varbinary", int: "int", float: "float",
               bool: "bit", decimal.Decimal: "decimal", dt.datetime: "datetime2", dt.date: "date", dt.time: "time",
               uuid.UUID: "uniqueidentifier"}
_NATIVE = re.compile(r"\((\d+)\)\s*(?:\(SQL\w+\))?\s*$")
_VENDOR = re.compile(r"^(?:\[[^\]]*\]\s*)+")


# --- connection arguments -------------------------------------------------------------------------
def odbc_value(value: str) -> str:
    """An ODBC connection-string value, braced so ``;`` ``=`` and ``}`` cannot inject attributes."""
    return "{" + str(value).replace("}", "}}") + "}"


def access_token_struct(token: str) -> bytes:
    """The token as the driver wants it: a little-endian length, then the UTF-16-LE bytes."""
    raw = token.encode("utf-16-le")
    return struct.pack(f"<I{len(raw)}s", len(raw), raw)


def connection_string(target: Target, driver: str, *, read_only: bool, username: str = "", password: str = "",
                      connect_timeout: int = 5) -> str:
    conn = target.settings(AzureSqlConnection)
    parts = [
        f"Driver={odbc_value(driver)}",
        f"Server={odbc_value(f'tcp:{conn.host},{conn.port}')}",
        f"Database={odbc_value(conn.database)}",
        "Encrypt=yes",
        f"TrustServerCertificate={'yes' if conn.trust_server_certificate else 'no'}",
        f"Connection Timeout={int(conn.connect_timeout or connect_timeout)}",
        f"ApplicationIntent={'ReadOnly' if read_only else 'ReadWrite'}",
        f"APP={odbc_value('agent-access-broker')}",
    ]
    if username or password:
        parts += [f"UID={odbc_value(username)}", f"PWD={odbc_value(password)}"]
    return ";".join(parts)


def connect_arguments(target: Target, secret: SecretValue, driver: str, *, read_only: bool,
                      connect_timeout: int = 5) -> tuple[str, dict[int, bytes]]:
    """The connection string and ``attrs_before``: an access token (managed identity) or UID/PWD."""
    if isinstance(target.credential, ManagedIdentityCredential):
        return (connection_string(target, driver, read_only=read_only, connect_timeout=connect_timeout),
                {SQL_COPT_SS_ACCESS_TOKEN: access_token_struct(secret.value)})
    credential = parse_credential(secret.value)
    username = credential.get("username") or target.settings(AzureSqlConnection).username
    return (connection_string(target, driver, read_only=read_only, username=username,
                              password=credential["password"], connect_timeout=connect_timeout), {})


def session_batch(limits: ExecutionLimits, read_only: bool) -> str:
    """The broker's own batch before the agent's statement: pinned options, isolation, a transaction."""
    isolation = "SNAPSHOT" if read_only else "READ COMMITTED"
    return ("SET XACT_ABORT ON; SET NOCOUNT OFF; SET IMPLICIT_TRANSACTIONS OFF; SET QUOTED_IDENTIFIER ON; "
            "SET ANSI_NULLS ON; SET ANSI_WARNINGS ON; SET ARITHABORT ON; SET CONCAT_NULL_YIELDS_NULL ON; "
            f"SET LOCK_TIMEOUT {int(limits.timeout_ms)}; SET DEADLOCK_PRIORITY LOW; "
            f"SET TRANSACTION ISOLATION LEVEL {isolation}; BEGIN TRANSACTION")


END_READ = "IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION"
END_WRITE = "IF @@TRANCOUNT > 0 COMMIT TRANSACTION"


def query_timeout_seconds(limits: ExecutionLimits) -> int:
    """ODBC's query timeout counts whole seconds (0 would mean none)."""
    return max(1, math.ceil(limits.timeout_ms / 1000))


# --- values -----------------------------------------------------------------------------------------
def datetimeoffset(raw: bytes | None) -> dt.datetime | None:
    """SQL_SS_TIMESTAMPOFFSET_STRUCT -> an aware datetime (nanoseconds cut to microseconds)."""
    if raw is None:
        return None
    year, month, day, hour, minute, second, nanos, tz_hour, tz_minute = struct.unpack("<6hI2h", raw)
    zone = dt.timezone(dt.timedelta(hours=tz_hour, minutes=tz_minute))
    return dt.datetime(year, month, day, hour, minute, second, nanos // 1000, tzinfo=zone)


def column_type_name(type_code: Any) -> str:
    return _TYPE_NAMES.get(type_code, getattr(type_code, "__name__", str(type_code)).lower())


# --- errors -------------------------------------------------------------------------------------------
def map_error(exc: Exception, target: Target, limits: ExecutionLimits, *, connecting: bool) -> BrokerError:
    """A pyodbc error -> the broker's catalogue, by SQLSTATE and SQL Server's native error number."""
    sqlstate = str(exc.args[0]) if exc.args else ""
    message = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
    found = _NATIVE.search(message)
    native = int(found.group(1)) if found else 0
    text = _VENDOR.sub("", _NATIVE.sub("", message)).strip()
    if sqlstate == "IM002" or "Can't open lib" in message:
        return Unavailable(NO_DRIVER, code="engine_unavailable")
    if sqlstate == "28000" or native in (18456, 18452, 18470, 40532):
        return Unavailable(f"The broker's credential for {target.name} was refused.", code="target_auth_failed")
    if connecting or sqlstate.startswith("08"):
        return Unavailable(f"Target {target.name} is unreachable.", code="target_unavailable")
    if sqlstate in ("HYT00", "HYT01") or native == 1222:
        return TimedOut(f"The statement ran longer than {limits.timeout_ms} ms (or waited too long for a lock) "
                        "and was cancelled.", code="statement_timeout", extra={"native_error": native})
    if native in (3906, 3908):
        return CommandFailed("The database refused a write: it is read-only here.", code="read_only_violation",
                             extra={"native_error": native})
    if native in (3952, 3951, 3960):
        return Unavailable(f"{target.name} does not allow SNAPSHOT isolation, which the broker uses for reads "
                           "(ALTER DATABASE ... SET ALLOW_SNAPSHOT_ISOLATION ON).", code="target_misconfigured")
    # The server's message can quote row values (a duplicate key); the execute path masks it.
    return CommandFailed(f"SQL Server refused the command: {text}", code="query_failed",
                         extra={"native_error": native, "sqlstate": sqlstate})


# --- the engine ---------------------------------------------------------------------------------------
class AzureSqlEngine:
    language = SQL.name
    dialect = "tsql"

    def __init__(self, *, pool_max_size: int = 4, connect_timeout: int = 5, catalog_ttl: float = 60.0,
                 connect: Callable[..., Any] | None = None, drivers: Callable[[], list[str]] | None = None) -> None:
        self._pool = IdlePool(pool_max_size)  # keyed by target, credential and read-only intent
        self._connect_timeout = connect_timeout
        self._connect = connect
        self._drivers = drivers
        self._modules = ModuleResolver(ttl=catalog_ttl)

    def classify(self, command: Command) -> Classification:
        return classify_sql(command.sql, self.dialect)

    def resolve(self, target: Target, command: Command, classification: Classification,
                secret: Callable[[], SecretValue]) -> Classification:
        """A statement the classifier calls a read stays one only if every view, function, synonym,
        computed column and security predicate it reaches is a read by its own definition
        (``sql_tsql_resolve``, reading the catalog on a read-intent connection)."""
        if classification.risk is not Risk.READ:
            return classification  # nothing to prove: it is not run as a read anyway
        if self.unavailable_reason() is not None:
            return classification  # no driver here: the run refuses it (engine_unavailable), journaled
        limits = ExecutionLimits()
        opened: list[tuple[SecretValue, Any]] = []  # the connection, taken only when the catalog is not cached

        def query(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
            try:
                if not opened:
                    credential = secret()
                    conn = self._acquire(target, credential, True, limits)
                    conn.timeout = query_timeout_seconds(limits)
                    opened.append((credential, conn))
                return [tuple(row) for row in opened[0][1].cursor().execute(sql, *params).fetchall()]
            except BrokerError:
                raise
            except Exception as exc:  # pyodbc.Error: the catalog is unreadable, so nothing is known
                raise Unavailable(f"The catalog of {target.name} could not be read to classify the command.",
                                  code="target_unavailable") from exc

        released = False
        try:
            try:
                findings = self._modules.findings(target.name, command.sql, query)
            except BrokerError:
                raise
            except Exception:  # the analysis itself failed (not the target): fail closed, not "unreachable"
                log.exception("resolving a read on %s failed", target.name)
                findings = [SqlFinding(Risk.UNKNOWN, "the broker could not analyse what the statement reaches "
                                                     "on the target, so it is not known to be a read")]
            if opened:
                self._release(target, opened[0][0], True, opened[0][1])
                released = True
        finally:
            if opened and not released:
                close_quietly(opened[0][1])
        return escalate(classification, findings, "catalog")

    # --- connections ---
    def _pyodbc(self) -> Any:
        try:
            import pyodbc  # imported on first use: needs libodbc (unixODBC) at run time
        except ImportError as exc:
            raise Unavailable(NO_DRIVER_MANAGER, code="engine_unavailable") from exc
        return pyodbc

    def _installed_drivers(self) -> list[str]:
        return list((self._drivers or self._pyodbc().drivers)())

    def unavailable_reason(self) -> str | None:
        try:
            installed = self._installed_drivers()
        except Unavailable as exc:
            return exc.detail
        return None if any(name in installed for name in DRIVERS) else NO_DRIVER

    def driver(self, target: Target) -> str:
        chosen = target.settings(AzureSqlConnection).driver
        if chosen:
            return chosen
        installed = self._installed_drivers()
        for name in DRIVERS:
            if name in installed:
                return name
        raise Unavailable(NO_DRIVER, code="engine_unavailable")

    def _acquire(self, target: Target, secret: SecretValue, read_only: bool, limits: ExecutionLimits) -> Any:
        idle = self._pool.take(IdlePool.key(target, secret, read_only))  # a renewed token retires the old
        if idle is not None:
            return idle
        conn_str, attrs = connect_arguments(target, secret, self.driver(target), read_only=read_only,
                                            connect_timeout=self._connect_timeout)
        connect = self._connect or self._pyodbc().connect
        try:
            conn = connect(conn_str, attrs_before=attrs or None, autocommit=True, timeout=self._connect_timeout)
        except Exception as exc:  # pyodbc.Error, or the driver manager failing to load
            raise map_error(exc, target, limits, connecting=True) from exc
        conn.add_output_converter(SQL_SS_TIMESTAMPOFFSET, datetimeoffset)
        return conn

    def _release(self, target: Target, secret: SecretValue, read_only: bool, conn: Any) -> None:
        self._pool.give(IdlePool.key(target, secret, read_only), conn)

    def check(self, target: Target, secret: SecretValue) -> None:
        conn = self._acquire(target, secret, True, ExecutionLimits())
        try:
            conn.cursor().execute("SELECT 1").fetchall()
        except Exception as exc:
            close_quietly(conn)
            raise map_error(exc, target, ExecutionLimits(), connecting=False) from exc
        self._release(target, secret, True, conn)

    def read_schema(self, target: Target, secret: SecretValue) -> Schema:
        """Every column the broker's login can see, for lineage (``broker/lineage``)."""
        conn = self._acquire(target, secret, True, ExecutionLimits())
        try:
            cursor = conn.cursor()

            def query(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
                return [tuple(row) for row in cursor.execute(sql, *params).fetchall()]

            schema = read_mssql(query)
        except BrokerError:
            close_quietly(conn)
            raise
        except Exception as exc:
            close_quietly(conn)
            raise Unavailable(f"The schema of {target.name} could not be read to resolve column lineage.",
                              code="target_unavailable") from exc
        self._release(target, secret, True, conn)
        return schema

    # --- execution ---
    def execute(self, target: Target, command: Command, secret: SecretValue, limits: ExecutionLimits,
                *, read_only: bool) -> ResultSet:
        conn = self._acquire(target, secret, read_only, limits)
        reusable = False
        try:
            conn.timeout = query_timeout_seconds(limits)
            cursor = conn.cursor()
            cursor.execute(session_batch(limits, read_only))
            cursor.execute(command.sql)
            result = self._collect(cursor, limits)
            if result.truncated:
                cursor.cancel()  # stop the server producing rows nobody will read
            cursor.execute(END_READ if read_only else END_WRITE)
            reusable = read_only and not result.truncated
            return result
        except BrokerError:
            raise
        except Exception as exc:  # pyodbc.Error and its subclasses
            raise map_error(exc, target, limits, connecting=False) from exc
        finally:
            if reusable:
                self._release(target, secret, read_only, conn)
            else:
                close_quietly(conn)  # a write, a cut-off read or a failure: never back in the pool
            if not read_only:  # a write may have changed a view or function: resolve from a fresh catalog
                self._modules.forget(target.name)

    @staticmethod
    def _collect(cursor: Any, limits: ExecutionLimits) -> ResultSet:
        if cursor.description is None:
            result = ResultSet(affected=cursor.rowcount if cursor.rowcount >= 0 else None)
            result.status = "OK"
            return result
        result = collect_rows(fetch_batches(cursor, limits.max_rows + 1), limits)
        result.columns = [Column(d[0], column_type_name(d[1])) for d in cursor.description]
        result.status = f"SELECT {len(result.rows)}"
        return result

    def close(self) -> None:
        self._pool.close()

