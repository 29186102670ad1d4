"""Reads from PostgreSQL that never pull a value larger than the byte cap over the wire.

The statement is described first (Parse + Describe: PostgreSQL resolves its output columns
without running it). If any output column has a variable-length type, the read runs as

    SELECT c1, CASE WHEN t > cap AND l2 > share THEN NULL ELSE c2 END, ..., <marker per column>
    FROM (SELECT * FROM (<statement>) AS _i(c1, ..., cn) OFFSET 0) AS _b
    CROSS JOIN LATERAL (SELECT l2, ..., l2 + ... AS t FROM (SELECT octet_length(c2::text) AS l2 ...)
                        AS _x OFFSET 0) AS _l

so the server measures each value's text form (what the text protocol would send) and sends NULL
and the size instead of a value that does not fit (``_cells.cell_share``). ``OFFSET 0`` keeps the
planner from copying the agent's expressions into the CASE arms (evaluating them twice). The
statement inside is the agent's text, verbatim, on its own lines (a trailing ``--`` comment cannot
swallow the closing parenthesis); only a single plain SELECT (VALUES, TABLE, WITH ... SELECT) is
wrapped, anything else (SHOW, EXPLAIN) returns bounded rows by construction and runs as it is.
Column names and types reach the agent from the description, not from the wrapper.
"""

from __future__ import annotations

from dataclasses import dataclass

import pglast
import psycopg
from pglast import ast
from psycopg import errors as pg_errors
from psycopg import pq

from broker.targets._cells import cell_share

# Built-in types whose text form is short and bounded (fixed length, or bounded like inet): sent
# as they are. Everything else, including every type not listed here, goes through the size check.
FIXED_SIZE_TYPES = frozenset({
    16, 18, 19, 20, 21, 23, 24, 26, 27, 28, 29, 600, 601, 603, 628, 650, 700, 701, 718, 774, 790, 829, 869,
    1082, 1083, 1114, 1184, 1186, 1266, 2202, 2203, 2204, 2205, 2206, 2950, 3220, 3734, 3769, 4089, 4096,
    4191, 5069,
})
_TEXT_TYPES = frozenset({25, 1042, 1043})  # text, char(n), varchar: their size is in the header
_BYTEA = 17
_ROWS_PER_CHUNK_WRAPPED = 4  # rows per chunk when each may carry up to the byte cap


@dataclass(frozen=True)
class OutputColumn:
    name: str
    type_oid: int


@dataclass(frozen=True)
class BoundedRead:
    """What to send for a read: the SQL, the columns the agent sees, and where the markers are."""

    sql: str
    columns: tuple[OutputColumn, ...]
    marked: tuple[int, ...] = ()
    """Indexes of the columns whose size the server checks; one marker column each follows them."""

    @property
    def chunk(self) -> int:
        return _ROWS_PER_CHUNK_WRAPPED if self.marked else 500


def select_text(sql: str) -> str | None:
    """The statement's own text when it is a single SELECT (no trailing ``;``), else None."""
    try:
        statements = pglast.parse_sql(sql)
    except pglast.parser.ParseError:
        return None  # PostgreSQL will say why; nothing to wrap
    if len(statements) != 1 or not isinstance(statements[0].stmt, ast.SelectStmt):
        return None
    raw = statements[0]
    if raw.stmt.intoClause is not None:  # SELECT ... INTO creates a table: not a row source
        return None
    start = raw.stmt_location or 0
    return (sql[start:start + raw.stmt_len] if raw.stmt_len else sql[start:]).rstrip()


def describe(conn: psycopg.Connection, sql: str) -> tuple[OutputColumn, ...]:
    """The statement's output columns as PostgreSQL resolves them, without running it."""
    pgconn = conn.pgconn
    encoding = conn.info.encoding
    for result in (pgconn.prepare(b"", sql.encode(encoding)), pgconn.describe_prepared(b"")):
        if result.status != pq.ExecStatus.COMMAND_OK:
            raise pg_errors.error_from_result(result, encoding=encoding)
    return tuple(OutputColumn((result.fname(i) or b"").decode(encoding), result.ftype(i))
                 for i in range(result.nfields))


def plan(conn: psycopg.Connection, sql: str, max_bytes: int) -> BoundedRead | None:
    """The bounded form of a read, or None when ``sql`` is not a single SELECT (run it as it is)."""
    text = select_text(sql)
    if text is None:
        return None
    columns = describe(conn, text)
    marked = tuple(i for i, c in enumerate(columns) if c.type_oid not in FIXED_SIZE_TYPES)
    if not marked:
        return BoundedRead(sql, columns)
    sizes = {i: columns[i].type_oid for i in marked}
    return BoundedRead(wrap(text, len(columns), sizes, max_bytes), columns, marked)


def text_size(column: str, type_oid: int) -> str:
    """SQL for the size of ``column``'s text form, as cheaply as the server can tell it: text types
    carry their size (no copy), bytea's hex form is twice its bytes plus ``\\x``; anything else is
    converted with its output function, which the text protocol would run anyway."""
    if type_oid in _TEXT_TYPES:
        return f"octet_length({column})"
    if type_oid == _BYTEA:
        return (f"CASE current_setting('bytea_output') WHEN 'hex' THEN 2 * octet_length({column}) + 2 "
                f"ELSE octet_length({column}::text) END")
    return f"octet_length({column}::text)"


def wrap(text: str, width: int, sizes: dict[int, int], max_bytes: int) -> str:
    """The size-checking projection around ``text`` (integers and the broker's names only);
    ``sizes`` maps each checked column's index to its type."""
    marked = tuple(sorted(sizes))
    cap, share = int(max_bytes), cell_share(int(max_bytes), len(marked))
    names = ", ".join(f"c{i}" for i in range(width))
    lengths = ", ".join(f"{text_size(f'_b.c{i}', sizes[i])} AS l{i}" for i in marked)
    total = " + ".join(f"COALESCE(l{i}, 0)" for i in marked)
    carried = ", ".join(f"l{i}" for i in marked)
    cut = {i: f"(_l.t > {cap} AND _l.l{i} > {share})" for i in marked}
    values = [f"CASE WHEN {cut[i]} THEN NULL ELSE _b.c{i} END" if i in cut else f"_b.c{i}" for i in range(width)]
    markers = [f"CASE WHEN {cut[i]} THEN _l.l{i} END" for i in marked]
    # the agent's text is run as the statement it is (classified, resolved, read-only): not injection
    head = f"SELECT {', '.join(values + markers)}\n"
    source = f"FROM (SELECT * FROM (\n{text}\n) AS _i({names}) OFFSET 0) AS _b\n"  # noqa: S608
    sizes = f"CROSS JOIN LATERAL (SELECT {carried}, {total} AS t FROM (SELECT {lengths}) AS _x OFFSET 0) AS _l"  # noqa: S608
    return head + source + sizes
