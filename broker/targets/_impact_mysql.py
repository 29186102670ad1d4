"""Measured impact on MySQL and MariaDB: the statement inside a transaction that is always rolled
back, counted by the server (``ROW_COUNT()``, PyMySQL's ``rowcount``), and the bound on the approved run.

What a rollback cannot undo refuses the trial: a trigger (code the broker cannot inspect), a table
that is not transactional (MyISAM, Aria, FEDERATED, CONNECT: the change would stay or reach another
server), a write through a view, an INSERT into a table with an ``AUTO_INCREMENT`` column (InnoDB
does not give the values back), and a write that can use a column default drawing a MariaDB sequence.
DDL commits implicitly here, so only single UPDATE, DELETE and INSERT statements are ever tried.
Per-table counts exist only for a single-table statement (the server
has no per-transaction table statistics); rows a foreign key cascades into are not counted, and
approvers are told which tables they are. No sample of rows: UPDATE has no ``RETURNING`` here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import pymysql
import sqlglot
from sqlglot import exp

from broker.targets._mysql_wire import BoundedConnection, run_counted
from broker.targets.base import Impact, ImpactBound, TableImpact

EXACT_COUNT_BELOW = 100_000
"""Tables whose estimate is below this are counted inside the trial (InnoDB's estimate lags)."""

_ROW_CHANGES = (exp.Update, exp.Delete, exp.Insert)
_TRANSACTIONAL = {"innodb"}


def statement(sql: str) -> exp.Expression | None:
    try:
        parsed = sqlglot.parse(sql, read="mysql")
    except sqlglot.errors.SqlglotError:
        return None
    return parsed[0] if len(parsed) == 1 and isinstance(parsed[0], _ROW_CHANGES) else None


def _target(stmt: exp.Expression, database: str) -> tuple[str, str] | None:
    """The one table a single-table statement writes, else None (joins: no per-table count)."""
    if isinstance(stmt, exp.Insert):
        node = stmt.this
        table = node if isinstance(node, exp.Table) else node.find(exp.Table)
    elif isinstance(stmt, exp.Update | exp.Delete):
        table = stmt.this if isinstance(stmt.this, exp.Table) else None
        if table is None or stmt.args.get("from") or stmt.args.get("joins") or stmt.args.get("using") \
                or stmt.args.get("tables"):
            return None
    else:
        return None
    return (table.db or database, table.name) if table is not None and table.name else None


def _query(cur: pymysql.cursors.Cursor, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
    cur.execute(sql, tuple(args))
    return list(cur.fetchall())


def _sequence_default(cur: pymysql.cursors.Cursor, stmt: exp.Expression, tables: list[tuple[str, str]],
                      sql: str) -> str:
    """The written table whose column default draws a MariaDB sequence (``DEFAULT NEXTVAL(s)``), when
    the statement can use that default (an INSERT, or ``SET c = DEFAULT``); else ''."""
    if not (isinstance(stmt, exp.Insert) or re.search(r"\bdefault\b", sql, re.IGNORECASE)):
        return ""
    for schema, name in tables:
        if _query(cur, "SELECT 1 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s "
                       "AND LOWER(COLUMN_DEFAULT) LIKE %s LIMIT 1", (schema, name, "%nextval(%")):
            return f"{schema}.{name}"
    return ""


def refusal(cur: pymysql.cursors.Cursor, stmt: exp.Expression, database: str, sql: str) -> tuple[str, list[str]]:
    """Why the trial must not run, or '' and notes for approvers (cascades not counted)."""
    named = {(t.db or database, t.name) for t in stmt.find_all(exp.Table) if t.name}
    written = _target(stmt, database)
    notes: list[str] = []
    for schema, name in sorted(named):
        if _query(cur, "SELECT 1 FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = %s "
                       "AND EVENT_OBJECT_TABLE = %s LIMIT 1", (schema, name)):
            return f"a trigger on {schema}.{name} runs code the broker cannot inspect", notes
        kind = _query(cur, "SELECT TABLE_TYPE, ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
                           "AND TABLE_NAME = %s", (schema, name))
        if not kind:
            continue  # a CTE's name, or no such table: the statement fails in the trial
        table_type, engine = kind[0]
        if table_type != "BASE TABLE":
            if (schema, name) == written or written is None:
                return f"{schema}.{name} is not a table (a write through a view is not measured)", notes
            continue
        if str(engine or "").lower() not in _TRANSACTIONAL:
            return f"{schema}.{name} uses the {engine} engine, which a rollback does not undo", notes
    if written is None:
        notes.append("the statement writes through a join: rows are counted for the statement, not per table")
    else:
        if isinstance(stmt, exp.Insert) and _query(
                cur, "SELECT 1 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s "
                     "AND EXTRA LIKE %s LIMIT 1", (*written, "%auto_increment%")):
            return (f"{written[0]}.{written[1]} draws AUTO_INCREMENT values, which a rollback does not return",
                    notes)
    drawn = _sequence_default(cur, stmt, [written] if written is not None else sorted(named), sql)
    if drawn:
        return f"{drawn} draws values from a sequence (a column default), and a rollback does not return them", notes
    if written is not None:
        children = _query(cur, "SELECT DISTINCT CONSTRAINT_SCHEMA, TABLE_NAME FROM "
                               "information_schema.REFERENTIAL_CONSTRAINTS WHERE UNIQUE_CONSTRAINT_SCHEMA = %s "
                               "AND REFERENCED_TABLE_NAME = %s AND (DELETE_RULE <> 'RESTRICT' AND DELETE_RULE "
                               "<> 'NO ACTION' OR UPDATE_RULE <> 'RESTRICT' AND UPDATE_RULE <> 'NO ACTION')",
                          written)
        if children:
            names = ", ".join(f"{s}.{t}" for s, t in children)
            notes.append(f"foreign keys cascade into {names}; rows changed there are not counted")
    return "", notes


def _total(cur: pymysql.cursors.Cursor, table: tuple[str, str], inserted: int, deleted: int) -> tuple[int | None, bool]:
    rows = _query(cur, "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
                       "AND TABLE_NAME = %s", table)
    estimate = rows[0][0] if rows else None
    if estimate is not None and int(estimate) >= EXACT_COUNT_BELOW:
        return int(estimate), False
    quoted = ".".join("`" + part.replace("`", "``") + "`" for part in table)  # names from the catalog
    after = _query(cur, f"SELECT COUNT(*) FROM {quoted}", ())[0][0]  # noqa: S608 -- identifiers, quoted above
    return int(after) - inserted + deleted, True


def measure(conn: BoundedConnection, sql: str, database: str) -> Impact:
    """Inside the caller's open read-write transaction (it rolls back): refuse, or run and count."""
    stmt = statement(sql)
    if stmt is None:
        return Impact(measured=False, reason="the statement does not change rows (only UPDATE, DELETE and "
                                             "INSERT are measured)")
    with conn.cursor() as cur:
        why, notes = refusal(cur, stmt, database, sql)
        if why:
            return Impact(measured=False, reason=why)
        rows = run_counted(conn, sql)  # a RETURNING result is read off the wire, kept nowhere
        written = _target(stmt, database)
        tables: list[TableImpact] = []
        if written is not None:
            ins = rows if isinstance(stmt, exp.Insert) else 0
            dele = rows if isinstance(stmt, exp.Delete) else 0
            upd = rows if isinstance(stmt, exp.Update) else 0
            total, exact = _total(cur, written, ins, dele)
            tables.append(TableImpact(f"{written[0]}.{written[1]}", ins, upd, dele, total, exact))
    return Impact(measured=True, rows=rows, tables=tables, notes=notes)


def excess(sql: str, database: str, rows: int, bound: ImpactBound) -> str | None:
    """Why an approved run that changed ``rows`` may not commit (or None): per table for a single-table
    statement, else for the statement only."""
    stmt = statement(sql)
    written = _target(stmt, database) if stmt is not None else None
    if written is None:
        return ImpactBound(rows=bound.rows, max_rows_changed=bound.max_rows_changed).excess(rows, {})
    return bound.excess(rows, {f"{written[0]}.{written[1]}": rows})
