"""PostgreSQL through psycopg 3: one statement per round trip, reads in a read-only transaction.

The second wall behind the classifier: a read runs in ``BEGIN READ ONLY`` with a local
``statement_timeout``, so a write that slipped past the guard is refused by PostgreSQL itself.
Every statement goes over the extended query protocol (a stream for reads, pipeline mode for
writes), which refuses a second statement: psycopg's plain ``execute`` without parameters would use
the simple protocol, which runs ``SELECT 1; DELETE ...`` as two.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg import pq
from psycopg_pool import ConnectionPool, PoolTimeout

from broker.catalog import Target
from broker.guard import Classification, Risk
from broker.guard.languages import SQL
from broker.guard.sql import classify_sql, escalate
from broker.guard.sql_pg_resolve import CatalogResolver, Query
from broker.lineage.schema import Schema, read_postgres
from broker.problems import BrokerError, CommandFailed, Conflict, TimedOut, Unavailable
from broker.secrets import SecretValue
from broker.targets import _impact_pg
from broker.targets import _pg_wire as pg_wire
from broker.targets import _pg_write as pg_write
from broker.targets._cells import split_markers
from broker.targets._pg_reach import Reach
from broker.targets._rows import collect_rows, parse_credential
from broker.targets.base import Column, Command, ExecutionLimits, Impact, ImpactBound, ResultSet
from broker.targets.postgres_connection import PostgresConnection
from broker.targets.role_check import RoleSetting, postgres_settings


class PostgresEngine:
    language = SQL.name
    dialect = "postgres"

    def __init__(self, *, pool_max_size: int = 4, connect_timeout: float = 3.0, catalog_ttl: float = 60.0) -> None:
        # per (target, credential version): the pool and what its connection attempts showed (_pg_reach)
        self._pools: dict[tuple[str, str], tuple[ConnectionPool, Reach]] = {}
        self._lock = threading.Lock()
        self._pool_max = pool_max_size
        self._connect_timeout = connect_timeout
        self._resolver = CatalogResolver(ttl=catalog_ttl)
        # closes reads' transactions and resets their sessions off the answer's path; the
        # connection goes back to its pool only after that (``_finish_read``)
        self._finisher = ThreadPoolExecutor(max_workers=2, thread_name_prefix="broker-pg-finish")

    def classify(self, command: Command) -> Classification:
        return classify_sql(command.sql, self.dialect)

    def resolve(self, target: Target, command: Command, classification: Classification,
                secret: Callable[[], SecretValue]) -> Classification:
        """A statement the parsers call a read stays one only if every function the target will
        resolve for it (calls, attribute notation, operators, casts, views, policies) is harmless."""
        if classification.risk is not Risk.READ:
            return classification  # nothing to prove: it is not run as a read anyway
        try:
            with self._catalog_query(self._pool(target, secret())) as query:
                findings = self._resolver.findings(target.name, command.sql, query)
        except PoolTimeout as exc:
            raise Unavailable(f"Target {target.name} is unreachable.", code="target_unavailable") from exc
        except psycopg.Error as exc:
            raise Unavailable(f"The catalog of {target.name} could not be read to classify the command.",
                              code="target_unavailable") from exc
        return escalate(classification, findings, "catalog")

    def read_schema(self, target: Target, secret: SecretValue) -> Schema:
        """Every column the broker's role can see, for lineage (``broker/lineage``)."""
        try:
            with self._catalog_query(self._pool(target, secret)) as query:
                return read_postgres(query)
        except PoolTimeout as exc:
            raise Unavailable(f"Target {target.name} is unreachable.", code="target_unavailable") from exc
        except psycopg.Error as exc:
            raise Unavailable(f"The schema of {target.name} could not be read to resolve column lineage.",
                              code="target_unavailable") from exc

    def role_settings(self, target: Target, secret: SecretValue, connections_needed: int) -> list[RoleSetting]:
        """The limits the broker's role carries, as its own sessions see them (``role_check``)."""
        names = ["statement_timeout", "idle_in_transaction_session_timeout", "temp_file_limit", "work_mem"]
        try:
            with self._catalog_query(self._pool(target, secret)) as query:
                # reset_val: the session's value before any SET (the look-up's own SET LOCAL hides it)
                rows = query("SELECT name, reset_val, unit, source FROM pg_settings WHERE name = ANY(%s)", [names])
                role, limit = query("SELECT rolname, rolconnlimit FROM pg_roles WHERE rolname = current_user", [])[0]
        except PoolTimeout as exc:
            raise Unavailable(f"Target {target.name} is unreachable.", code="target_unavailable") from exc
        except psycopg.Error as exc:
            raise Unavailable(f"The settings of {target.name}'s role could not be read.",
                              code="target_unavailable") from exc
        return postgres_settings(role, rows, limit, connections_needed)

    @contextmanager
    def _catalog_query(self, pool: ConnectionPool) -> Iterator[Query]:
        """Catalog look-ups on one pooled connection (taken only if one is needed), read-only."""
        held: list[psycopg.Connection] = []

        def query(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
            if not held:
                held.append(pool.getconn())
                held[0].execute("BEGIN READ ONLY; SET LOCAL statement_timeout = 2000")
            return held[0].execute(sql, params).fetchall()

        ok = False
        try:
            yield query
            ok = True
        finally:
            if held:
                conn = held[0]
                try:
                    if ok:
                        conn.execute("ROLLBACK")
                    else:
                        conn.close()
                finally:
                    pool.putconn(conn)

    # --- connections ---
    def _conninfo(self, target: Target, secret: SecretValue) -> dict[str, Any]:
        conn = target.settings(PostgresConnection)
        params = conn.libpq()
        params.setdefault("connect_timeout", int(self._connect_timeout))
        credential = parse_credential(secret.value)
        params["user"] = credential.get("username") or conn.username
        params["password"] = credential["password"]
        return params

    def _pool(self, target: Target, secret: SecretValue) -> ConnectionPool:
        key = (target.name, secret.version or str(hash(secret.value)))
        entry = self._pools.get(key)
        if entry is None:
            with self._lock:
                entry = self._pools.get(key)
                if entry is None:
                    for old_key in [k for k in self._pools if k[0] == target.name]:
                        self._pools.pop(old_key)[0].close(timeout=0)  # credential rotated
                    # autocommit: the engine writes its own BEGIN/COMMIT so that opening a transaction
                    # with its limits, and closing it with the session reset, are one round trip each.
                    # prepare_threshold=None: agents' statements are one-offs.
                    kwargs = {**self._conninfo(target, secret), "autocommit": True, "prepare_threshold": None}
                    reach = Reach()
                    pool = ConnectionPool(kwargs=kwargs, min_size=0, max_size=self._pool_max, open=True,
                                          connection_class=reach.connection_class(),
                                          timeout=self._connect_timeout, max_idle=300, name=f"broker-{target.name}")
                    entry = self._pools[key] = (pool, reach)
        pool, reach = entry
        reach.refuse_if_unreachable(target, pool, self._connect_timeout)
        return pool

    def unavailable_reason(self) -> str | None:
        return None  # pure-Python client: runs wherever the broker runs

    def check(self, target: Target, secret: SecretValue) -> None:
        try:
            with self._pool(target, secret).connection() as conn:
                conn.execute("SELECT 1")
        except (psycopg.Error, PoolTimeout) as exc:
            raise Unavailable(f"Target {target.name} is unreachable.", code="target_unavailable") from exc

    # --- execution ---
    def execute(self, target: Target, command: Command, secret: SecretValue, limits: ExecutionLimits,
                *, read_only: bool) -> ResultSet:
        try:
            return self._execute(self._pool(target, secret), command.sql, limits, read_only)
        except pg_errors.QueryCanceled as exc:
            raise TimedOut(f"The statement ran longer than {limits.timeout_ms} ms and was cancelled.",
                           code="statement_timeout") from exc
        except pg_errors.ReadOnlySqlTransaction as exc:
            raise CommandFailed("The database refused a write inside a read-only transaction.",
                                code="read_only_violation", extra={"sqlstate": exc.sqlstate}) from exc
        except (pg_errors.InvalidPassword, pg_errors.InvalidAuthorizationSpecification) as exc:
            raise Unavailable(f"The broker's credential for {target.name} was refused.",
                              code="target_auth_failed") from exc
        except PoolTimeout as exc:
            raise Unavailable(f"Target {target.name} is unreachable.", code="target_unavailable") from exc
        except psycopg.OperationalError as exc:
            # No SQLSTATE (the socket broke), a connection exception (08) or operator intervention
            # (57: the backend was terminated, the server is shutting down or crashed): the target
            # failed, not the command, and its transaction was rolled back. 08P01 (protocol
            # violation) is the server refusing this command's messages, e.g. a ``$1`` with no value
            # bound; it stays connected, and the agent must hear what to fix, not "unreachable".
            if exc.sqlstate == _PROTOCOL_VIOLATION:
                raise _command_failed(exc) from exc
            if exc.sqlstate is None or exc.sqlstate[:2] in ("08", "57"):
                raise Unavailable(f"Target {target.name} is unreachable.",
                                  code="target_unavailable") from exc
            raise _command_failed(exc) from exc
        except psycopg.Error as exc:
            raise _command_failed(exc) from exc
        finally:
            if not read_only:  # a write may have replaced a view or function: judge reads anew
                self._resolver.forget(target.name)

    def _execute(self, pool: ConnectionPool, sql: str, limits: ExecutionLimits, read_only: bool) -> ResultSet:
        """Three round trips: open the transaction with its limits; the statement; close it and
        reset the session. A read's result is whole once its rows are in (a read-only transaction
        has nothing to commit), so its close and reset run behind the answer (``_finish_read``);
        a write's COMMIT is part of its outcome and stays in line. A connection that failed
        anywhere is closed, never reused."""
        for attempt in (1, 2):
            conn = pool.getconn()
            reusable = handed_over = False
            try:
                try:
                    conn.execute(_begin(limits, read_only))
                except psycopg.OperationalError:
                    if attempt == 1 and conn.broken:  # a pooled connection the server dropped: nothing ran yet
                        continue
                    raise
                try:
                    result = self._run(conn, sql, limits, read_only)
                except psycopg.Error as exc:
                    if conn.broken and not isinstance(exc, psycopg.OperationalError):
                        # libpq reports a connection lost mid-result as a result without SQLSTATE,
                        # which psycopg raises as a plain DatabaseError: still the target failing
                        raise psycopg.OperationalError(f"the connection was lost: {exc}") from exc
                    raise
                if read_only:
                    self._finisher.submit(_finish_read, pool, conn)
                    handed_over = True
                    return result
                conn.execute("COMMIT; " + _RESET_SESSION)
                reusable = True
                return result
            finally:
                if not handed_over:
                    if not reusable:
                        conn.close()
                    pool.putconn(conn)
        raise AssertionError("unreachable")

    def _run(self, conn: psycopg.Connection, sql: str, limits: ExecutionLimits, read_only: bool) -> ResultSet:
        bounded: pg_wire.BoundedRead | None = None
        with conn.cursor() as cur:
            if read_only:
                # Streamed, so a capped read stops at the cap instead of pulling every row; through a
                # size-checking projection, so no value over the byte cap crosses the wire (_pg_wire).
                bounded = pg_wire.plan(conn, sql, limits.max_bytes)
                stream = cur.stream(bounded.sql if bounded else sql,
                                    size=min(limits.max_rows + 1, bounded.chunk if bounded else 500))
                rows = split_markers(stream, len(bounded.columns), bounded.marked) if bounded else stream
                try:
                    result = collect_rows(rows, limits)
                except psycopg.ProgrammingError as exc:
                    # the statement ran (read-only) but returns no rows: stream() cannot say so; a
                    # server error (it has a SQLSTATE) is not this case
                    if exc.sqlstate is not None or (
                            cur.pgresult is not None and cur.pgresult.status != pq.ExecStatus.COMMAND_OK):
                        raise
                    result = ResultSet()
                finally:
                    stream.close()  # cancels the rest of a capped read
            else:
                # A write runs once, to completion; its returned rows are capped, and bounded at the
                # wire as a read's are (``_pg_write``).
                result, _, written = pg_write.run(conn, cur, sql, limits)
                if written is not None:  # the status is the statement's own count (``UPDATE 5``)
                    result.columns = [Column(c.name, _type_name(conn, c.type_oid)) for c in written.columns]
                    return result
            if read_only and bounded is not None:  # the agent's own columns, not the wrapper's
                result.columns = [Column(c.name, _type_name(conn, c.type_oid)) for c in bounded.columns]
            elif cur.description:
                result.columns = [Column(d.name, _type_name(conn, d.type_code)) for d in cur.description]
            # a streamed read that was stopped at the cap, or returned no row, has no status of its own
            result.status = cur.statusmessage or (f"SELECT {result.row_count}" if cur.description or result.columns
                                                  else "")
            if not cur.description and cur.rowcount >= 0:
                result.affected = cur.rowcount
        return result

    # --- measured impact (``ImpactTrial``): the approval workflow's trial and the bound run ---
    def measure_impact(self, target: Target, command: Command, secret: SecretValue, limits: ExecutionLimits,
                       *, sample_rows: int) -> Impact:
        """The change inside ``BEGIN`` with the timeouts, then always ``ROLLBACK`` (``_impact_pg``)."""
        pool = self._pool(target, secret)
        try:
            conn = pool.getconn()
        except PoolTimeout as exc:
            raise Unavailable(f"Target {target.name} is unreachable.", code="target_unavailable") from exc
        reusable = False
        try:
            # a trial waits for a lock at most half its time: a row someone holds is then said to be held
            lock_ms = max(50, int(limits.timeout_ms) // 2)
            conn.execute(_begin(limits, read_only=False) + f"; SET LOCAL lock_timeout = {lock_ms}")
            try:
                impact = _impact_pg.measure(conn, command.sql, limits, sample_rows)
            except psycopg.OperationalError as exc:
                if exc.sqlstate is None:
                    raise
                impact = _impact_pg.trial_failure(exc, limits)
            except psycopg.Error as exc:
                impact = _impact_pg.trial_failure(exc, limits)
            conn.execute("ROLLBACK; " + _RESET_SESSION)
            reusable = True
            return impact
        except psycopg.Error as exc:
            raise _unreachable_or_failed(target, exc) from exc
        finally:
            if not reusable:
                conn.close()  # closing a connection inside a transaction rolls it back
            pool.putconn(conn)

    def execute_bounded(self, target: Target, command: Command, secret: SecretValue, limits: ExecutionLimits,
                        bound: ImpactBound) -> ResultSet:
        """The approved write in one transaction: commit within ``bound``, else roll back and refuse."""
        pool = self._pool(target, secret)
        try:
            conn = pool.getconn()
        except PoolTimeout as exc:
            raise Unavailable(f"Target {target.name} is unreachable.", code="target_unavailable") from exc
        reusable = False
        try:
            conn.execute(_begin(limits, read_only=False))
            result, excess = _impact_pg.run_bounded(conn, command.sql, limits, bound, self._run)
            if excess is not None:
                conn.execute("ROLLBACK; " + _RESET_SESSION)
                reusable = True
                raise Conflict(f"Rolled back, nothing changed: {excess}.", code="impact_exceeded",
                               remedy="Look at what changed since the approval; send the command again for a "
                                      "new approval (or narrow it).",
                               extra={"previewed_rows": bound.rows, "max_rows_changed": bound.max_rows_changed})
            conn.execute("COMMIT; " + _RESET_SESSION)
            reusable = True
            return result
        except pg_errors.QueryCanceled as exc:
            raise TimedOut(f"The statement ran longer than {limits.timeout_ms} ms and was cancelled.",
                           code="statement_timeout") from exc
        except psycopg.Error as exc:
            raise _unreachable_or_failed(target, exc) from exc
        finally:
            if not reusable:
                conn.close()
            pool.putconn(conn)
            self._resolver.forget(target.name)  # it may have replaced a view or function

    def close(self) -> None:
        self._finisher.shutdown(wait=True)  # every handed-over read is reset and back in its pool
        self._finisher = ThreadPoolExecutor(max_workers=2, thread_name_prefix="broker-pg-finish")
        with self._lock:
            for pool, _ in self._pools.values():
                pool.close(timeout=1)
            self._pools.clear()


def _finish_read(pool: ConnectionPool, conn: psycopg.Connection) -> None:
    """End a read's transaction and reset its session, then give the connection back; one that
    cannot be reset is closed, so the next caller never inherits its state."""
    try:
        conn.execute("ROLLBACK; " + _RESET_SESSION)
    except psycopg.Error:
        conn.close()
    finally:
        pool.putconn(conn)


def _begin(limits: ExecutionLimits, read_only: bool) -> str:
    """The broker's own opening statement (integers only: no agent text reaches it)."""
    timeout = int(limits.timeout_ms)
    return (f"BEGIN{' READ ONLY' if read_only else ''}; SET LOCAL statement_timeout = {timeout}; "
            f"SET LOCAL lock_timeout = {timeout}; SET LOCAL idle_in_transaction_session_timeout = {timeout * 2}")


# What DISCARD ALL does, in a form that may follow COMMIT/ROLLBACK in one round trip: the next
# caller must not inherit what an approved command did to the session (an approved
# ``SET standard_conforming_strings = off`` would change how the next statement is read), nor its
# prepared statements, cursors, LISTENs, advisory locks, temp tables or sequence state.
_RESET_SESSION = ("SET SESSION AUTHORIZATION DEFAULT; RESET ALL; DEALLOCATE ALL; CLOSE ALL; UNLISTEN *; "
                  "SELECT pg_advisory_unlock_all(); DISCARD PLANS; DISCARD TEMP; DISCARD SEQUENCES")


def _type_name(conn: psycopg.Connection, oid: int) -> str:
    info = conn.adapters.types.get(oid)  # an array's oid finds its element type's info
    if info is None:
        return f"oid:{oid}"
    return f"{info.name}[]" if oid == info.array_oid and oid != info.oid else info.name


_PROTOCOL_VIOLATION = "08P01"


def _command_failed(exc: psycopg.Error) -> CommandFailed:
    diag = exc.diag
    # The server's message can quote row values (e.g. a duplicate key); the caller masks it.
    message = (diag.message_primary or str(exc)).strip()
    return CommandFailed(f"PostgreSQL refused the command: {message}", code="query_failed",
                         extra={"sqlstate": exc.sqlstate or ""})


def _unreachable_or_failed(target: Target, exc: psycopg.Error) -> BrokerError:
    """A dropped connection (no SQLSTATE) is the target being unreachable; else the target refused."""
    if isinstance(exc, psycopg.OperationalError) and exc.sqlstate is None:
        return Unavailable(f"Target {target.name} is unreachable.", code="target_unavailable")
    return _command_failed(exc)
