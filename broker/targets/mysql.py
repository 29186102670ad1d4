"""MySQL and MariaDB through PyMySQL: one statement per round trip, reads in a read-only transaction.

The second wall behind the classifier: every call first pins the session (``sql_mode`` without
``ANSI_QUOTES``/``NO_BACKSLASH_ESCAPES``, so the server tokenises exactly as the guard did; UTC;
a statement time limit), then a read runs under ``SET SESSION TRANSACTION READ ONLY`` and
``START TRANSACTION READ ONLY`` and is always rolled back. The session setting matters: DDL
commits implicitly and would escape a read-only transaction alone. Multi-statement text is
refused by the server because the client never sets ``CLIENT.MULTI_STATEMENTS`` (nor
``LOCAL_FILES``: ``LOAD DATA LOCAL`` cannot read the broker's files). A connection that ran a
write, was cut short at a row cap, or failed is closed, never pooled.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pymysql
import sqlglot
from pymysql.constants import CLIENT, FIELD_TYPE

from broker.catalog import Target
from broker.guard import Classification, Risk
from broker.guard.languages import SQL
from broker.guard.sql import classify_sql, escalate
from broker.guard.sql_mysql_resolve import Query, ViewResolver
from broker.guard.sql_rules import SqlFinding
from broker.lineage.schema import Schema, read_mysql
from broker.problems import BrokerError, CommandFailed, Conflict, TimedOut, Unavailable
from broker.secrets import SecretValue
from broker.targets import _impact_mysql
from broker.targets._mysql_wire import BoundedConnection, bounded_rows, row_limit, write_rows
from broker.targets._pool import IdlePool, close_quietly
from broker.targets._render import to_json_value
from broker.targets._rows import collect_rows, parse_credential
from broker.targets.base import Column, Command, ExecutionLimits, Impact, ImpactBound, ResultSet
from broker.targets.mysql_connection import MySQLConnection, MySQLTls
from broker.targets.role_check import RoleSetting, mysql_settings

SQL_MODE = "STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION"
CLIENT_READ_TIMEOUT = 605  # seconds: a backstop above the longest policy timeout; the server limit comes first
_FORBIDDEN_FLAGS = CLIENT.MULTI_STATEMENTS | CLIENT.LOCAL_FILES

_TIMEOUT_ERRORS = {1969, 3024, 1205, 1317, 1028}  # max_statement_time, max_execution_time, lock wait, interrupted
_AUTH_ERRORS = {1044, 1045, 1698, 1251, 2059}
_CONNECTION_ERRORS = {2002, 2003, 2005, 2006, 2013, 2055, 1053, 1927}  # client-side lost; shutdown; killed
_READ_ONLY_ERRORS = {1792, 1290, 1836}

_TYPE_NAMES = {
    FIELD_TYPE.DECIMAL: "decimal", FIELD_TYPE.NEWDECIMAL: "decimal", FIELD_TYPE.TINY: "tinyint",
    FIELD_TYPE.SHORT: "smallint", FIELD_TYPE.INT24: "mediumint", FIELD_TYPE.LONG: "int",
    FIELD_TYPE.LONGLONG: "bigint", FIELD_TYPE.FLOAT: "float", FIELD_TYPE.DOUBLE: "double", FIELD_TYPE.NULL: "null",
    FIELD_TYPE.TIMESTAMP: "timestamp", FIELD_TYPE.DATE: "date", FIELD_TYPE.TIME: "time",
    FIELD_TYPE.DATETIME: "datetime", FIELD_TYPE.YEAR: "year", FIELD_TYPE.BIT: "bit", FIELD_TYPE.JSON: "json",
    FIELD_TYPE.ENUM: "enum", FIELD_TYPE.SET: "set", FIELD_TYPE.GEOMETRY: "geometry",
    FIELD_TYPE.VARCHAR: "varchar", FIELD_TYPE.VAR_STRING: "varchar", FIELD_TYPE.STRING: "char",
    FIELD_TYPE.TINY_BLOB: "blob", FIELD_TYPE.MEDIUM_BLOB: "blob", FIELD_TYPE.LONG_BLOB: "blob",
    FIELD_TYPE.BLOB: "blob",
}
_TEXTUAL = {FIELD_TYPE.VARCHAR, FIELD_TYPE.VAR_STRING, FIELD_TYPE.STRING, FIELD_TYPE.TINY_BLOB,
            FIELD_TYPE.MEDIUM_BLOB, FIELD_TYPE.LONG_BLOB, FIELD_TYPE.BLOB}
_BINARY_CHARSET = 63


def connect_arguments(target: Target, secret: SecretValue, *, connect_timeout: float = 5.0) -> dict[str, Any]:
    """PyMySQL's ``connect()`` keywords for a target: TLS from the catalog, no multi-statements."""
    conn = target.settings(MySQLConnection)
    credential = parse_credential(secret.value)
    arguments: dict[str, Any] = {
        "host": conn.host,
        "port": conn.port,
        "user": credential.get("username") or conn.username,
        "password": credential["password"],
        "database": conn.database,
        "charset": "utf8mb4",
        "autocommit": False,
        "connect_timeout": int(conn.connect_timeout or connect_timeout),
        "read_timeout": CLIENT_READ_TIMEOUT,
        "write_timeout": 30,
        "client_flag": 0,  # PyMySQL adds its defaults; MULTI_STATEMENTS and LOCAL_FILES stay off
        "local_infile": False,
        "program_name": "agent-access-broker",
    }
    tls = conn.tls
    if tls:  # ``tls: true`` (system CAs) or ``tls: {ca: path, verify_identity: true}``; Azure requires it
        settings = tls if isinstance(tls, MySQLTls) else MySQLTls()
        if settings.ca:
            arguments["ssl_ca"] = settings.ca
        arguments["ssl_verify_cert"] = True
        arguments["ssl_verify_identity"] = settings.verify_identity
    else:
        arguments["ssl_disabled"] = True
    return arguments


def session_statements(mariadb: bool, limits: ExecutionLimits, read_only: bool) -> list[tuple[str, tuple[Any, ...]]]:
    """What runs before the agent's statement, in order (each its own round trip)."""
    seconds = max(1, math.ceil(limits.timeout_ms / 1000))
    if mariadb:  # seconds (fractional); applies to every statement
        limit_sql, limit = "max_statement_time = %s", limits.timeout_ms / 1000
    else:  # MySQL: milliseconds; applies to SELECT only (writes are bounded by the lock wait timeout)
        limit_sql, limit = "max_execution_time = %s", limits.timeout_ms
    mode = "READ ONLY" if read_only else "READ WRITE"
    return [
        (f"SET SESSION sql_mode = %s, time_zone = '+00:00', innodb_lock_wait_timeout = %s, {limit_sql}",
         (SQL_MODE, seconds, limit)),
        (f"SET SESSION TRANSACTION {mode}", ()),
        (f"START TRANSACTION {mode}", ()),
    ]


class MySQLEngine:
    language = SQL.name
    dialect = "mysql"

    def __init__(self, *, pool_max_size: int = 4, connect_timeout: float = 5.0, catalog_ttl: float = 60.0) -> None:
        self._pool = IdlePool(pool_max_size)
        self._connect_timeout = connect_timeout
        self._views = ViewResolver(ttl=catalog_ttl)

    def classify(self, command: Command) -> Classification:
        return classify_sql(command.sql, self.dialect)

    def resolve(self, target: Target, command: Command, classification: Classification,
                secret: Callable[[], SecretValue]) -> Classification:
        """A statement the classifier calls a read stays one only if every view it names (and every
        view those name) is a read by its own definition (``sql_mysql_resolve``)."""
        if classification.risk is not Risk.READ:
            return classification  # nothing to prove: it is not run as a read anyway
        try:
            with self._catalog_query(target, secret(), "to classify the command") as query:
                findings = self._views.findings(target.name, command.sql,
                                                target.settings(MySQLConnection).database or "", query)
        except sqlglot.errors.ParseError:  # the classifier parsed it; if this parse disagrees: not a read
            findings = [SqlFinding(Risk.UNKNOWN, "the statement's relations could not be resolved")]
        return escalate(classification, findings, "catalog")

    def read_schema(self, target: Target, secret: SecretValue) -> Schema:
        """Every column the broker's account can see, for lineage (``broker/lineage``)."""
        with self._catalog_query(target, secret, "to resolve column lineage") as query:
            return read_mysql(query)

    def role_settings(self, target: Target, secret: SecretValue, connections_needed: int) -> list[RoleSetting]:
        """The limits the broker's account carries, as a new session sees them (``role_check``): on a
        connection of its own, since a pooled one carries the broker's ``SET SESSION`` limits."""
        try:
            conn = self._connect(target, secret)
        except (OSError, pymysql.err.MySQLError) as exc:
            raise Unavailable(f"Target {target.name} is unreachable.", code="target_unavailable") from exc
        try:
            with conn.cursor() as cur:
                mariadb = "mariadb" in conn.get_server_info().lower()
                timer = "max_statement_time" if mariadb else "max_execution_time"
                cur.execute(f"SELECT @@SESSION.{timer}, @@SESSION.max_user_connections")
                timeout, connections = cur.fetchone()
        except (OSError, pymysql.err.MySQLError) as exc:
            raise Unavailable(f"The limits of {target.name}'s account could not be read.",
                              code="target_unavailable") from exc
        finally:
            close_quietly(conn)
        return mysql_settings(mariadb, {timer: str(timeout), "max_user_connections": str(connections)},
                              connections_needed)

    @contextmanager
    def _catalog_query(self, target: Target, secret: SecretValue, purpose: str) -> Iterator[Query]:
        """Catalog look-ups on one pooled connection, rolled back; a connection that failed is closed."""
        try:
            conn = self._acquire(target, secret)
        except OSError as exc:
            raise Unavailable(f"Target {target.name} is unreachable.", code="target_unavailable") from exc
        except pymysql.err.MySQLError as exc:
            raise Unavailable(f"The catalog of {target.name} could not be read {purpose}.",
                              code="target_unavailable") from exc

        def query(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
            with conn.cursor() as cur:
                cur.execute(sql, tuple(params) or None)
                return list(cur.fetchall())

        reusable = False
        try:
            yield query
            conn.rollback()
            reusable = True
        except OSError as exc:
            raise Unavailable(f"Target {target.name} is unreachable.", code="target_unavailable") from exc
        except pymysql.err.MySQLError as exc:
            raise Unavailable(f"The catalog of {target.name} could not be read {purpose}.",
                              code="target_unavailable") from exc
        finally:
            if reusable:
                self._release(target, secret, conn)
            else:
                close_quietly(conn)

    # --- connections ---
    def _acquire(self, target: Target, secret: SecretValue) -> BoundedConnection:
        idle = self._pool.take(IdlePool.key(target, secret))
        if idle is not None:
            return idle
        return self._connect(target, secret)

    def _connect(self, target: Target, secret: SecretValue) -> BoundedConnection:
        conn = BoundedConnection(**connect_arguments(target, secret, connect_timeout=self._connect_timeout))
        if conn.client_flag & _FORBIDDEN_FLAGS:  # never trust a default to stay a default
            close_quietly(conn)
            raise Unavailable("The MySQL client enabled multi-statements or local files; refusing to run.",
                              code="target_misconfigured")
        return conn

    def _release(self, target: Target, secret: SecretValue, conn: pymysql.connections.Connection) -> None:
        if conn.open:
            self._pool.give(IdlePool.key(target, secret), conn)
        else:
            close_quietly(conn)

    def unavailable_reason(self) -> str | None:
        return None  # pure-Python client: runs wherever the broker runs

    def check(self, target: Target, secret: SecretValue) -> None:
        try:
            conn = self._acquire(target, secret)
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
            self._release(target, secret, conn)
        except pymysql.err.MySQLError as exc:
            raise _map_error(exc, target, ExecutionLimits()) from exc

    # --- execution ---
    def execute(self, target: Target, command: Command, secret: SecretValue, limits: ExecutionLimits,
                *, read_only: bool) -> ResultSet:
        conn = None
        reusable = False
        try:
            conn = self._acquire(target, secret)
            mariadb = "mariadb" in conn.get_server_info().lower()
            with conn.cursor() as cur:
                for sql, args in session_statements(mariadb, limits, read_only):
                    cur.execute(sql, args or None)
            result, reusable = (self._read(conn, command.sql, limits) if read_only
                                else self._write(conn, command.sql, limits))
            return result
        except pymysql.err.MySQLError as exc:
            reusable = False
            raise _map_error(exc, target, limits) from exc
        except OSError as exc:
            reusable = False
            raise Unavailable(f"Target {target.name} is unreachable.", code="target_unavailable") from exc
        finally:
            if conn is not None:
                if reusable:
                    self._release(target, secret, conn)
                else:
                    close_quietly(conn)
            if not read_only:  # a write may have replaced a view: judge reads by the new definition
                self._views.forget(target.name)

    def _read(self, conn: BoundedConnection, sql: str, limits: ExecutionLimits) -> tuple[ResultSet, bool]:
        # Unbuffered: a capped read stops at the cap instead of pulling every row; a row longer on
        # the wire than the byte cap allows is not read at all (``_mysql_wire``).
        cur = conn.cursor(pymysql.cursors.SSCursor)
        cur.execute(sql)
        fields = _fields(cur)
        stopped: list[int] = []
        rows = bounded_rows(conn, cur, limits.max_rows + 1, row_limit(limits.max_bytes, len(fields)), stopped)
        result = collect_rows(rows, limits, _renderer(fields))
        rows.close()  # lifts the packet limit now, not when the generator is collected
        result.columns = _columns(cur, fields)
        result.status = f"SELECT {len(result.rows)}" if cur.description else "OK"
        if stopped:  # the connection is closed: the refused row is still on the wire
            result.truncated, result.truncated_by = True, "max_bytes"
            return result, False
        if result.truncated:
            conn.abandon()  # unread rows are still on the wire: dropped, not read to the end
            return result, False
        cur.close()
        conn.rollback()  # a read never commits anything
        return result, True

    def _write(self, conn: BoundedConnection, sql: str,
               limits: ExecutionLimits) -> tuple[ResultSet, bool]:
        result, _ = _run_write(conn, sql, limits)
        conn.commit()
        return result, False  # a write may have changed session state: never reuse its connection

    # --- measured impact (``ImpactTrial``): the approval workflow's trial and the bound run ---
    @contextmanager
    def _write_session(self, target: Target, secret: SecretValue,
                       limits: ExecutionLimits) -> Iterator[BoundedConnection]:
        """A connection with the write session's limits, closed afterwards (it ran a write, even one
        rolled back: never pooled, like every write); driver and network errors mapped as ``execute``'s."""
        conn = None
        try:
            conn = self._acquire(target, secret)
            mariadb = "mariadb" in conn.get_server_info().lower()
            with conn.cursor() as cur:
                for sql, args in session_statements(mariadb, limits, read_only=False):
                    cur.execute(sql, args or None)
            yield conn
        except pymysql.err.MySQLError as exc:
            raise _map_error(exc, target, limits) from exc
        except OSError as exc:
            raise Unavailable(f"Target {target.name} is unreachable.", code="target_unavailable") from exc
        finally:
            if conn is not None:
                close_quietly(conn)

    def measure_impact(self, target: Target, command: Command, secret: SecretValue, limits: ExecutionLimits,
                       *, sample_rows: int) -> Impact:
        with self._write_session(target, secret, limits) as conn:
            try:
                impact = _impact_mysql.measure(conn, command.sql, target.settings(MySQLConnection).database or "")
            except pymysql.err.MySQLError as exc:
                failure = _map_error(exc, target, limits)
                if isinstance(failure, Unavailable):
                    raise failure from exc
                impact = Impact(measured=False, error=f"the statement failed in the trial: {failure.detail}",
                                error_code=str(failure.extra.get("errno", "")))
            conn.rollback()
            return impact

    def execute_bounded(self, target: Target, command: Command, secret: SecretValue, limits: ExecutionLimits,
                        bound: ImpactBound) -> ResultSet:
        """The approved write in one transaction: commit within ``bound``, else roll back and refuse."""
        try:
            with self._write_session(target, secret, limits) as conn:
                result, affected = _run_write(conn, command.sql, limits)
                excess = _impact_mysql.excess(command.sql, target.settings(MySQLConnection).database or "",
                                              affected, bound)
                if excess is not None:
                    conn.rollback()
                    raise Conflict(f"Rolled back, nothing changed: {excess}.", code="impact_exceeded",
                                   remedy="Look at what changed since the approval; send the command again for a "
                                          "new approval (or narrow it).",
                                   extra={"previewed_rows": bound.rows, "max_rows_changed": bound.max_rows_changed})
                conn.commit()
                return result
        finally:  # after the commit: it may have replaced a view (a trial never commits, so keeps the cache)
            self._views.forget(target.name)

    def close(self) -> None:
        self._pool.close()


def _run_write(conn: BoundedConnection, sql: str, limits: ExecutionLimits) -> tuple[ResultSet, int]:
    """Run a changing statement (not committed): its result, capped, and the rows it affected. The
    result is read unbuffered to its end: no row longer than the byte cap allows is held, and the
    statement completes on the server (``_mysql_wire.write_rows``)."""
    with conn.cursor(pymysql.cursors.SSCursor) as cur:
        affected = cur.execute(sql)
        fields = _fields(cur)
        if not cur.description:
            result = ResultSet(affected=affected, status=f"OK {affected}")
            return result, affected
        seen: list[int] = []
        rows = write_rows(conn, cur, row_limit(limits.max_bytes, len(fields)), seen)
        result = collect_rows(rows, limits, _renderer(fields))
        for _ in rows:  # the rest is read and dropped: the statement must complete to be committed
            pass
        affected, skipped = seen
        if skipped:
            result.truncated, result.truncated_by = True, "max_bytes"
        result.columns = _columns(cur, fields)
        result.status = f"OK {affected}"
    return result, affected


def _fields(cur: pymysql.cursors.Cursor) -> list[Any]:
    result = getattr(cur, "_result", None)
    return list(getattr(result, "fields", None) or [])


def _columns(cur: pymysql.cursors.Cursor, fields: list[Any]) -> list[Column]:
    columns = []
    for i, desc in enumerate(cur.description or ()):
        charset = getattr(fields[i], "charsetnr", None) if i < len(fields) else None
        columns.append(Column(desc[0], column_type_name(desc[1], charset)))
    return columns


def column_type_name(type_code: int, charsetnr: int | None = None) -> str:
    name = _TYPE_NAMES.get(type_code, f"type:{type_code}")
    if type_code in _TEXTUAL and charsetnr is not None:
        binary = charsetnr == _BINARY_CHARSET
        if name == "blob":
            return "blob" if binary else "text"
        return {"varchar": "varbinary", "char": "binary"}[name] if binary else name
    return name


def _renderer(fields: list[Any]) -> Any:
    types = [getattr(f, "type_code", None) for f in fields]

    def render(index: int, value: Any) -> Any:
        return render_value(types[index] if index < len(types) else None, value)

    return render


def render_value(type_code: int | None, value: Any) -> Any:
    """A MySQL value as JSON, faithfully: TIMESTAMP is UTC (the session's zone), BIT an integer,
    JSON a document; the rest as ``_render`` does it."""
    if value is None:
        return None
    if type_code == FIELD_TYPE.TIMESTAMP and isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC).isoformat()
    if type_code == FIELD_TYPE.BIT and isinstance(value, (bytes, bytearray)):
        return int.from_bytes(value, "big")
    if type_code == FIELD_TYPE.JSON:
        try:
            return json.loads(value)
        except (TypeError, ValueError):
            return to_json_value(value)
    return to_json_value(value)


def _map_error(exc: pymysql.err.MySQLError, target: Target, limits: ExecutionLimits) -> BrokerError:
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
    message = str(exc.args[1]).strip() if len(exc.args) > 1 else str(exc)
    if code in _READ_ONLY_ERRORS:
        return CommandFailed("The database refused a write inside a read-only transaction.",
                             code="read_only_violation", extra={"errno": code})
    if code in _TIMEOUT_ERRORS:
        return TimedOut(f"The statement ran longer than {limits.timeout_ms} ms (or waited too long for a lock) "
                        "and was cancelled.", code="statement_timeout", extra={"errno": code})
    if code in _AUTH_ERRORS:
        return Unavailable(f"The broker's credential for {target.name} was refused.", code="target_auth_failed")
    if code in _CONNECTION_ERRORS or isinstance(exc, pymysql.err.InterfaceError):
        return Unavailable(f"Target {target.name} is unreachable.", code="target_unavailable")
    # The server's message can quote row values (a duplicate key); the execute path masks it.
    return CommandFailed(f"MySQL refused the command: {message}", code="query_failed", extra={"errno": code})

