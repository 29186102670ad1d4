"""Measured impact on PostgreSQL: a trial inside a transaction that is always rolled back, and the
bound on the approved run (``ImpactTrial`` in ``base.py``; the engine owns the connections).

Per-table counts come from ``pg_stat_xact_user_tables``, which counts what the *current* transaction
did so far (cascades and trigger writes included), read before and after the statement. The sample
of changed rows is the statement's own ``RETURNING``, or ``RETURNING *`` appended inside a savepoint
(a statement that refuses it runs again without). Before the trial runs, the catalog is asked what the
statement would set off beyond its rows: user triggers and rules (code the broker cannot inspect, which
could reach another connection), foreign tables, writes through views, sequences drawn by an
INSERT (``nextval`` is not rolled back), and user-defined functions that the write runs through a
column default, a check constraint, a row-level security policy or an index expression. Any of those
and the trial is refused: approvers read why.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import psycopg
import sqlglot
from psycopg import errors as pg_errors
from psycopg import sql as pg_sql
from sqlglot import exp

from broker.problems import BadRequest
from broker.targets import _pg_write as pg_write
from broker.targets.base import Column, ExecutionLimits, Impact, ImpactBound, ResultSet, TableImpact

SAMPLE_WHEN_AT_MOST = 100
"""Rows changed up to which approvers get a sample (a larger change is described by its counts)."""

_STATS = ("SELECT relid::regclass::text, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_xact_user_tables "
          "WHERE n_tup_ins + n_tup_upd + n_tup_del > 0")

# Every relation the statement names, plus those its foreign keys cascade into and their partitions:
# what each could set off that a rollback does not undo.
_EFFECTS = """
WITH RECURSIVE named AS (
  SELECT to_regclass(n) AS oid FROM unnest(%s::text[]) AS n
), rel AS (
  SELECT oid FROM named WHERE oid IS NOT NULL
  UNION
  SELECT x.child FROM rel, LATERAL (
    SELECT c.conrelid AS child FROM pg_constraint c WHERE c.confrelid = rel.oid AND c.contype = 'f'
      AND (c.confdeltype IN ('c', 'n', 'd') OR c.confupdtype IN ('c', 'n', 'd'))
    UNION SELECT i.inhrelid FROM pg_inherits i WHERE i.inhparent = rel.oid) AS x
)
SELECT r.oid::regclass::text, c.relkind,
  -- a child its foreign key sets to DEFAULT when the parent row changes: its defaults run
  EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = r.oid AND k.contype = 'f'
          AND 'd' IN (k.confdeltype, k.confupdtype) AND k.confrelid IN (SELECT oid FROM rel)),
  EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = r.oid AND NOT t.tgisinternal),
  EXISTS (SELECT 1 FROM pg_rewrite w WHERE w.ev_class = r.oid AND w.rulename <> '_RETURN'),
  EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
          AND a.attidentity <> '')
  OR EXISTS (SELECT 1 FROM pg_attrdef d WHERE d.adrelid = r.oid
             AND pg_get_expr(d.adbin, d.adrelid) ~* 'nextval\\s*\\(')
  OR EXISTS (SELECT 1 FROM pg_attrdef d WHERE d.adrelid = r.oid AND EXISTS (SELECT 1 FROM pg_depend x
             WHERE x.classid = 'pg_attrdef'::regclass AND x.objid = d.oid AND x.refclassid = 'pg_proc'::regclass
             AND x.refobjid NOT IN (SELECT oid FROM pg_proc WHERE pronamespace = 'pg_catalog'::regnamespace))),
  EXISTS (SELECT 1 FROM pg_depend x WHERE x.refclassid = 'pg_proc'::regclass
          AND x.refobjid NOT IN (SELECT oid FROM pg_proc WHERE pronamespace = 'pg_catalog'::regnamespace)
          AND ((x.classid = 'pg_constraint'::regclass
                AND x.objid IN (SELECT oid FROM pg_constraint WHERE conrelid = r.oid))
            OR (x.classid = 'pg_policy'::regclass AND x.objid IN (SELECT oid FROM pg_policy WHERE polrelid = r.oid))
            OR (x.classid = 'pg_class'::regclass
                AND x.objid IN (SELECT indexrelid FROM pg_index WHERE indrelid = r.oid))))
FROM rel r JOIN pg_class c ON c.oid = r.oid
"""

_ROW_CHANGES = (exp.Update, exp.Delete, exp.Insert, exp.Merge)
_STATUS_COUNT = re.compile(r"^(?:UPDATE|DELETE|MERGE|INSERT \d+) (\d+)$")

Run = Callable[[psycopg.Connection, str, ExecutionLimits, bool], ResultSet]


def statement(sql: str) -> exp.Expression | None:
    try:
        parsed = sqlglot.parse(sql, read="postgres")
    except sqlglot.errors.SqlglotError:
        return None
    return parsed[0] if len(parsed) == 1 and isinstance(parsed[0], _ROW_CHANGES) else None


def write_target(stmt: exp.Expression) -> exp.Table | None:
    node = stmt.this
    return node if isinstance(node, exp.Table) else node.find(exp.Table) if node is not None else None


def _name(table: exp.Table) -> str:
    """The name as written (an unquoted one folds to lower case in ``to_regclass``, as it does when it runs)."""
    return ".".join(part.sql(dialect="postgres") for part in table.parts if part.name)


def _written(stmt: exp.Expression) -> list[tuple[exp.Table, bool]]:
    """Every table the statement writes, with whether that write can draw a sequence value: the
    statement's own target and those of its data-modifying CTEs (``WITH i AS (INSERT …) UPDATE …``
    inserts too, and its ``nextval`` defaults are drawn in the trial as in the run)."""
    out = []
    for node in [stmt, *stmt.find_all(*_ROW_CHANGES)]:
        table = write_target(node)
        if table is not None and _name(table) and all(table is not t for t, _ in out):
            out.append((table, isinstance(node, exp.Insert | exp.Merge)))
    return out


def refusal(conn: psycopg.Connection, sql: str, stmt: exp.Expression) -> str:
    """Why the trial must not run (an effect outside the transaction), or ''."""
    names = [name for t in stmt.find_all(exp.Table) if (name := _name(t))]
    defaults = re.search(r"\bdefault\b", sql, re.IGNORECASE) is not None
    written: dict[str, bool] = {}
    for table, inserts in _written(stmt):
        oid = conn.execute("SELECT to_regclass(%s)::text", (_name(table),)).fetchone()[0]
        if oid is not None:
            written[oid] = written.get(oid, False) or inserts or defaults
    for name, relkind, set_default, triggers, rules, sequence, hooks in conn.execute(_EFFECTS, (names,)).fetchall():
        if triggers:
            return f"a trigger on {name} runs code the broker cannot inspect (it could reach outside the transaction)"
        if rules:
            return f"a rule on {name} rewrites the statement"
        if relkind == "f":
            return f"{name} is a foreign table: the change would reach another server"
        if name in written and relkind not in ("r", "p"):
            return f"{name} is not a table (a write through a view or other relation is not measured)"
        if sequence and (written.get(name) or set_default):
            return (f"{name} draws values from a sequence or runs a function in a column default, and a rollback "
                    "does not undo either")
        if hooks:  # on any relation it reaches: a cascade updates the child, a policy runs on reads too
            return (f"a check constraint, row-level security policy or index expression of {name} runs a function "
                    "the broker cannot inspect")
    return ""


def _stats(conn: psycopg.Connection) -> dict[str, tuple[int, int, int]]:
    return {row[0]: (int(row[1]), int(row[2]), int(row[3])) for row in conn.execute(_STATS).fetchall()}


def changes(before: dict[str, tuple[int, int, int]],
            after: dict[str, tuple[int, int, int]]) -> dict[str, tuple[int, int, int]]:
    out = {}
    for table, counts in after.items():
        old = before.get(table, (0, 0, 0))
        diff = tuple(a - b for a, b in zip(counts, old, strict=True))
        if any(diff):
            out[table] = diff
    return out


def _with_returning(sql: str, stmt: exp.Expression) -> str | None:
    """The statement with ``RETURNING *`` appended, when it parses back as the same statement."""
    if stmt.args.get("returning") is not None:
        return sql
    text = sql.rstrip().rstrip(";").rstrip() + "\nRETURNING *"
    again = statement(text)
    return text if again is not None and type(again) is type(stmt) and again.args.get("returning") else None


def _totals(conn: psycopg.Connection, changed: dict[str, tuple[int, int, int]]) -> dict[str, tuple[int | None, bool]]:
    """Rows each changed table held before the change: ``reltuples``, else counted (after - ins + del)."""
    out: dict[str, tuple[int | None, bool]] = {}
    for table, (ins, _upd, dele) in changed.items():
        schema, name, estimate = conn.execute(
            "SELECT n.nspname, c.relname, c.reltuples::bigint FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE c.oid = %s::regclass", (table,)).fetchone()
        if estimate >= 0:
            out[table] = (int(estimate), False)
            continue
        conn.execute("SAVEPOINT broker_count")
        try:
            counted = pg_sql.SQL("SELECT count(*) FROM {}").format(pg_sql.Identifier(schema, name))
            after = conn.execute(counted).fetchone()[0]
            conn.execute("RELEASE SAVEPOINT broker_count")
            out[table] = (int(after) - ins + dele, True)
        except psycopg.Error:
            conn.execute("ROLLBACK TO SAVEPOINT broker_count")
            out[table] = (None, False)
    return out


def measure(conn: psycopg.Connection, sql: str, limits: ExecutionLimits, sample_rows: int) -> Impact:
    """Inside the caller's open transaction (it rolls back): refuse, or run and count."""
    stmt = statement(sql)
    if stmt is None:
        return Impact(measured=False, reason="the statement does not change rows (only UPDATE, DELETE, INSERT "
                                             "and MERGE are measured)")
    why = refusal(conn, sql, stmt)
    if why:
        return Impact(measured=False, reason=why)
    before = _stats(conn)
    sampled = _with_returning(sql, stmt)
    sample: ResultSet | None = None
    # the sample's rows are bounded at the wire as the run's are (``_pg_write``): the trial runs
    # before anyone approved, so an agent's RETURNING must not load a huge value into the broker
    sample_limits = ExecutionLimits(max_rows=sample_rows, max_bytes=limits.max_bytes, timeout_ms=limits.timeout_ms)
    with conn.cursor() as cur:
        try:
            ran: tuple[ResultSet, int | None, pg_write.BoundedWrite | None] | None = None
            if sampled is not None:
                conn.execute("SAVEPOINT broker_sample")
                try:
                    ran = pg_write.run(conn, cur, sampled, sample_limits)
                    conn.execute("RELEASE SAVEPOINT broker_sample")
                except pg_errors.QueryCanceled:
                    raise
                except psycopg.Error:
                    conn.execute("ROLLBACK TO SAVEPOINT broker_sample")
            if ran is None:
                ran = pg_write.run(conn, cur, sql, sample_limits)
        except BadRequest as exc:
            return Impact(measured=False, reason=f"its returned rows cannot be bounded ({exc.detail})")
        result, rows, written = ran
        if written is not None:
            sample = result
            sample.columns = [Column(c.name, "") for c in written.columns]
        elif cur.description:
            sample = result
            sample.columns = [Column(d.name, "") for d in cur.description]
    changed = changes(before, _stats(conn))
    totals = _totals(conn, changed)
    tables = [TableImpact(t, ins, upd, dele, *totals[t]) for t, (ins, upd, dele) in sorted(changed.items())]
    impact = Impact(measured=True, rows=rows, tables=tables)
    if sample is not None and impact.changed <= SAMPLE_WHEN_AT_MOST:
        impact.sample = sample
        target = write_target(stmt)
        own = stmt.args.get("returning") is not None
        # lineage reads this text (it never runs): the sample's columns are the written table's
        read = exp.select("*").from_(target.copy()).sql(dialect="postgres") if target is not None else ""
        impact.sample_source = sql if own else read
    return impact


def trial_failure(exc: psycopg.Error, limits: ExecutionLimits) -> Impact:
    """The statement failed in the trial: approvers see that, with the target's (later masked) message."""
    if isinstance(exc, pg_errors.LockNotAvailable):
        message = f"it waited longer than {limits.timeout_ms} ms for a lock"
    elif isinstance(exc, pg_errors.QueryCanceled):
        message = f"it ran longer than {limits.timeout_ms} ms and was cancelled"
    else:
        message = (exc.diag.message_primary or str(exc)).strip()
    return Impact(measured=False, error=f"PostgreSQL refused the statement in the trial: {message}",
                  error_code=exc.sqlstate or "")


def affected(result: ResultSet) -> int | None:
    """The statement's count from its status (``UPDATE 5``): also set when it returned rows."""
    match = _STATUS_COUNT.match(result.status or "")
    return int(match.group(1)) if match else result.affected


def run_bounded(conn: psycopg.Connection, sql: str, limits: ExecutionLimits, bound: ImpactBound,
                run: Run) -> tuple[ResultSet, str | None]:
    """Run inside the caller's open transaction; return the result and why it may not commit (or None)."""
    before = _stats(conn)
    result = run(conn, sql, limits, False)
    per_table = {t: sum(c) for t, c in changes(before, _stats(conn)).items()}
    return result, bound.excess(affected(result), per_table)
