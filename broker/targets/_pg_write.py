"""Writes that return rows, bounded at the wire like reads (``_pg_wire``), and run exactly once.

A statement on the write path that returns rows (``UPDATE/INSERT/DELETE/MERGE ... RETURNING``, a
SELECT with a data-modifying CTE, a SELECT calling functions that are not harmless) is described
first (Parse + Describe, nothing runs), then run as

    WITH <the statement's own CTEs,> _broker_w(c1, ..., cn) AS MATERIALIZED (
    <the statement, verbatim>
    )
    SELECT <size-checking projection>, (SELECT count(*) FROM _broker_w)
    FROM (SELECT * FROM _broker_w LIMIT max_rows + 1) AS _b CROSS JOIN LATERAL (<sizes>) AS _l

PostgreSQL runs a data-modifying statement in WITH "exactly once, and always to completion,
independently of whether the primary query reads all (or indeed any) of their output" (manual,
7.8.4), and a materialized CTE is evaluated once; the ``count(*)`` (an InitPlan, evaluated with
the first row) reads the whole CTE before any row is sent, so a SELECT's volatile functions also
run for every row, and the count is the statement's own (what ``UPDATE n`` would say). Only
``max_rows + 1`` rows cross the wire, each cut as a read's are. The result is always read to its
end, never cancelled: AFTER triggers run once the last row is out, and an error there must fail
the write, not pass unseen.

A data-modifying CTE must be at the top level, so the statement's own WITH list is hoisted: its
text up to the body stays in front, the body goes into ``_broker_w``. The split is checked by
parsing both texts and comparing their trees (locations aside); a statement whose split does not
check out, or a ``CALL`` whose OUT parameters have variable-size types, is refused before it
runs (``EXPLAIN ANALYZE`` and ``SHOW`` describe, they do not return data: they run as they are).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pglast
import psycopg
from pglast import parser as pg_parser

from broker.problems import BadRequest
from broker.targets._cells import cell_share, split_markers
from broker.targets._pg_wire import FIXED_SIZE_TYPES, OutputColumn, describe, text_size
from broker.targets._rows import collect_rows
from broker.targets.base import ExecutionLimits, ResultSet

_NAME = "_broker_w"
_WRAPPED = ("SelectStmt", "InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt")
_TAGS = {"SelectStmt": "SELECT", "InsertStmt": "INSERT 0", "UpdateStmt": "UPDATE", "DeleteStmt": "DELETE",
         "MergeStmt": "MERGE"}
_BODY_STARTS = {"SELECT", "INSERT", "UPDATE", "DELETE_P", "MERGE", "VALUES", "TABLE", "ASCII_40"}
_LOCATIONS = {"location", "stmt_location", "stmt_len"}


@dataclass(frozen=True)
class BoundedWrite:
    """What to send for a write that returns rows: the SQL, the columns the agent sees, where the
    markers are (one per checked column, after the values), then the count column."""

    sql: str
    columns: tuple[OutputColumn, ...]
    marked: tuple[int, ...]
    tag: str  # the command tag's word(s): "UPDATE", "INSERT 0", ...

    @property
    def chunk(self) -> int:
        return 4 if self.marked else 500


def _tree(sql: str) -> list[dict[str, Any]]:
    """The parse tree without locations (two spellings of one statement compare equal)."""
    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k not in _LOCATIONS}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node
    return [strip(s["stmt"]) for s in json.loads(pg_parser.parse_sql_json(sql))["stmts"]]


def _statement(sql: str) -> tuple[str, str] | None:
    """The single statement's own text (no trailing ``;``) and its node type, or None."""
    try:
        statements = pglast.parse_sql(sql)
    except pg_parser.ParseError:
        return None  # PostgreSQL will say why
    if len(statements) != 1:
        return None
    raw = statements[0]
    if getattr(raw.stmt, "intoClause", None) is not None:  # SELECT ... INTO creates a table
        return None
    start = raw.stmt_location or 0
    text = (sql[start:start + raw.stmt_len] if raw.stmt_len else sql[start:]).rstrip()
    return text, type(raw.stmt).__name__


def _wrapper_head(width: int) -> str:
    names = ", ".join(f"c{i}" for i in range(width))
    return f"{_NAME}({names}) AS MATERIALIZED (\n"


def hoisted(text: str, kind: str, width: int) -> str | None:
    """``text`` with its body moved into ``_broker_w`` behind its own CTEs (the WITH clause in
    front), or the plain wrapping when it has none; None when no split parses back the same."""
    tree = _tree(text)[0][kind]
    if tree.get("withClause") is None:
        return f"WITH {_wrapper_head(width)}{text}\n)\n"
    original = tree["withClause"]
    body = {kind: {k: v for k, v in tree.items() if k != "withClause"}}
    depth = 0
    for token in pg_parser.scan(text)[1:]:
        if token.name == "ASCII_40":
            depth += 1
        elif token.name == "ASCII_41":
            depth -= 1
        if depth != (1 if token.name == "ASCII_40" else 0) or token.name not in _BODY_STARTS:
            continue
        candidate = f"{text[:token.start]}\n, {_wrapper_head(width)}{text[token.start:]}\n)\n"
        try:
            check = _tree(candidate + f"SELECT 1 FROM {_NAME}")  # noqa: S608 -- the broker's own name
        except pg_parser.ParseError:
            continue
        clause = check[0]["SelectStmt"]["withClause"] if len(check) == 1 else None
        if (clause and clause.get("recursive") == original.get("recursive")
                and clause["ctes"][:-1] == original["ctes"]
                and clause["ctes"][-1]["CommonTableExpr"]["ctequery"] == body):
            return candidate
    return None


def plan(conn: psycopg.Connection, sql: str, max_bytes: int, max_rows: int) -> BoundedWrite | None:
    """The bounded form of a row-returning write, or None when ``sql`` returns no rows (run it as it
    is); refuses one whose rows the broker could not bound."""
    found = _statement(sql)
    if found is None:
        return None
    text, kind = found
    columns = describe(conn, text)
    if not columns:
        return None
    marked = tuple(i for i, c in enumerate(columns) if c.type_oid not in FIXED_SIZE_TYPES)
    head = hoisted(text, kind, len(columns)) if kind in _WRAPPED else None
    if head is None:
        if not marked or kind not in (*_WRAPPED, "CallStmt"):
            # fixed-size values only (a CALL's integer OUT parameters), or rows the statement makes
            # itself, not from data (EXPLAIN ANALYZE's plan, SHOW): bounded as they are
            return None
        raise BadRequest("The statement returns values the broker cannot bound at the wire (this form "
                         "cannot be wrapped in a size check); nothing ran.", code="unsupported_command",
                         remedy="Return the values from an UPDATE/INSERT/DELETE/MERGE ... RETURNING or a "
                                "SELECT, or leave the large values out.")
    return BoundedWrite(head + _projection(len(columns), {i: columns[i].type_oid for i in marked},
                                           max_bytes, max_rows), columns, marked, _TAGS[kind])


def _projection(width: int, sizes: dict[int, int], max_bytes: int, max_rows: int) -> str:
    """The outer SELECT over ``_broker_w`` (integers and the broker's names only)."""
    marked = tuple(sorted(sizes))
    cap, share = int(max_bytes), cell_share(int(max_bytes), len(marked))
    cut = {i: f"(_l.t > {cap} AND _l.l{i} > {share})" for i in marked}
    values = [f"CASE WHEN {cut[i]} THEN NULL ELSE _b.c{i} END" if i in cut else f"_b.c{i}" for i in range(width)]
    markers = [f"CASE WHEN {cut[i]} THEN _l.l{i} END" for i in marked]
    count = f"(SELECT count(*) FROM {_NAME}) AS _n"  # noqa: S608 -- the broker's own name
    head = f"SELECT {', '.join(values + markers + [count])}\n"
    source = f"FROM (SELECT * FROM {_NAME} LIMIT {int(max_rows)}) AS _b"  # noqa: S608
    if not marked:
        return head + source
    lengths = ", ".join(f"{text_size(f'_b.c{i}', sizes[i])} AS l{i}" for i in marked)
    total = " + ".join(f"COALESCE(l{i}, 0)" for i in marked)
    carried = ", ".join(f"l{i}" for i in marked)
    return head + source + (f"\nCROSS JOIN LATERAL (SELECT {carried}, {total} AS t "  # noqa: S608
                            f"FROM (SELECT {lengths}) AS _x OFFSET 0) AS _l")


def run(conn: psycopg.Connection, cur: psycopg.Cursor, sql: str,
        limits: ExecutionLimits) -> tuple[ResultSet, int | None, BoundedWrite | None]:
    """Run a write on ``cur`` (inside the caller's open transaction, not committed): its capped
    result, the rows it affected, and its bounded form when it had one (then ``status`` carries
    the statement's count).
    A write returning no rows runs as it is, in pipeline mode (psycopg then uses the extended
    protocol even without parameters: one statement, no more); ``cur`` then describes it."""
    bounded = plan(conn, sql, limits.max_bytes, limits.max_rows + 1)
    if bounded is None:
        with conn.pipeline():
            cur.execute(sql)
        result = collect_rows(iter(cur.fetchmany(limits.max_rows + 1)) if cur.description else iter(()), limits)
        return result, (cur.rowcount if cur.rowcount >= 0 else None), None
    counts: list[int] = []
    stream = cur.stream(bounded.sql, size=bounded.chunk)
    rows = split_markers(_counted(stream, counts), len(bounded.columns), bounded.marked)
    result = collect_rows(rows, limits)
    for _ in rows:  # read to the end (at most max_rows + 1 rows, each cut): the write completes
        pass
    count = counts[0] if counts else 0
    result.status = f"{bounded.tag} {count}"
    return result, count, bounded


def _counted(rows: Iterator[tuple[Any, ...]], counts: list[int]) -> Iterator[tuple[Any, ...]]:
    """Rows without their last column (the statement's row count), which goes to ``counts``."""
    for row in rows:
        if not counts:
            counts.append(int(row[-1]))
        yield row[:-1]
