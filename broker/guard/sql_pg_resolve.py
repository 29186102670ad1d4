"""What a PostgreSQL statement will call, resolved against the target's own catalog.

The static walkers judge functions by the names written in the text. PostgreSQL calls more than
that: ``x.f`` and ``(x).f`` are calls of ``f(x)`` (attribute notation), every operator and many
casts run a function, a view or a row-level security policy runs the functions in its own
definition, a foreign table reaches another server, and an unqualified name resolves through the
search path (a ``public.lower(int)`` shadows nothing in the text). So a statement that the static
walkers call ``read`` is resolved here, against ``pg_proc``/``pg_operator``/``pg_cast``/``pg_class``/
``pg_depend`` of the target, and stays ``read`` only when every function it can reach is on the
allowlist: a ``pg_catalog`` built-in that is immutable or stable (or a volatile one known to only
compute or read) and is not on a dangerous list (``sql_rules``). Anything a name does not resolve
to, or that resolves to a user-defined function, is not a read.

The lookups run through a ``Query`` callable the engine supplies (the broker's own connection, in a
read-only transaction); verdicts are cached per target for ``ttl`` seconds, so a repeated statement
costs one parse and some dictionary look-ups. Over-approximation is deliberate: every overload of a
name, every operator of a spelling and every cast to a type counts.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from pglast.parser import ParseError, parse_sql_json

from broker.guard import Risk
from broker.guard.sql_pglast import _nodes, _wrapped
from broker.guard.sql_rules import PG_HARMLESS_VOLATILE, SqlFinding, pg_dangerous

Query = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]
"""(SQL with %s placeholders, parameters) -> rows; run by the engine on the target."""

Name = tuple[str, str]  # (schema or "", name), as PostgreSQL's parser folded them


@dataclass(frozen=True)
class References:
    """Every catalog object a statement names that can make PostgreSQL call a function."""

    calls: frozenset[Name] = frozenset()  # f(...)
    attributes: frozenset[Name] = frozenset()  # x.f, (x).f: maybe f(x)
    operators: frozenset[Name] = frozenset()
    types: frozenset[Name] = frozenset()  # casts and typed literals
    relations: frozenset[Name] = frozenset()  # tables, views, foreign tables (CTE names excluded)


_OPERATOR_KINDS = {"AEXPR_BETWEEN": ("<=", ">="), "AEXPR_NOT_BETWEEN": ("<", ">"),
                   "AEXPR_BETWEEN_SYM": ("<=", ">="), "AEXPR_NOT_BETWEEN_SYM": ("<", ">")}


def _strings(items: Any) -> list[str]:
    out = []
    for item in items or ():
        node = _wrapped(item)
        if node is None or node[0] != "String":
            return []
        out.append(str(node[1].get("sval", "")))
    return out


def _name(parts: list[str]) -> Name | None:
    if not parts:
        return None
    return (parts[-2] if len(parts) >= 2 else "", parts[-1])


@lru_cache(maxsize=2048)
def references(sql: str) -> References | None:
    """The references of one statement, or None when PostgreSQL's grammar does not take it."""
    try:
        parsed = json.loads(parse_sql_json(sql))
    except (ParseError, RecursionError):
        return None
    statements = parsed.get("stmts") or []
    if len(statements) != 1 or (root := _wrapped(statements[0].get("stmt"))) is None:
        return None
    calls, attributes, operators, types, relations, ctes = set(), set(), set(), set(), set(), set()
    for kind, fields in _nodes(*root):
        if kind == "FuncCall":
            if (name := _name(_strings(fields.get("funcname")))) is not None:
                calls.add(name)
        elif kind == "RangeTableSample":
            if (name := _name(_strings(fields.get("method")))) is not None:
                calls.add(name)
        elif kind == "ColumnRef":
            parts = [_wrapped(p) for p in fields.get("fields") or ()]
            if len(parts) >= 2 and parts[-1] is not None and parts[-1][0] == "String":
                attributes.add(("", str(parts[-1][1].get("sval", ""))))
        elif kind == "A_Indirection":
            for item in fields.get("indirection") or ():
                node = _wrapped(item)
                if node is not None and node[0] == "String":
                    attributes.add(("", str(node[1].get("sval", ""))))
        elif kind in ("A_Expr", "SubLink", "SortBy"):
            key = {"A_Expr": "name", "SubLink": "operName", "SortBy": "useOp"}[kind]
            parts = _strings(fields.get(key))
            spelled = _OPERATOR_KINDS.get(str(fields.get("kind")))
            if spelled:
                operators.update(("", op) for op in spelled)
            elif (name := _name(parts)) is not None:
                operators.add(name)
            if kind == "SubLink" and fields.get("subLinkType") in ("ANY_SUBLINK", "ALL_SUBLINK") and not parts:
                operators.add(("", "="))  # x IN (SELECT ...)
        elif kind == "TypeName":
            if (name := _name(_strings(fields.get("names")))) is not None:
                types.add(name)
        elif kind == "RangeVar":
            relations.add((str(fields.get("schemaname") or ""), str(fields.get("relname") or "")))
        elif kind == "CommonTableExpr":
            ctes.add(str(fields.get("ctename") or ""))
    relations = {r for r in relations if r[0] or r[1] not in ctes}
    return References(frozenset(calls), frozenset(attributes), frozenset(operators), frozenset(types),
                      frozenset(relations))


# --- judging one function -----------------------------------------------------------------------
@dataclass(frozen=True)
class Proc:
    oid: int
    schema: str
    name: str
    volatility: str  # i | s | v
    language: str


def judge(proc: Proc) -> SqlFinding | None:
    """None when the function is on the allowlist, else why calling it is not a read."""
    danger = pg_dangerous(proc.name.lower())
    if danger is not None:
        return danger
    if proc.schema != "pg_catalog":
        return SqlFinding(Risk.EXEC, f"{proc.schema}.{proc.name}() is a user-defined function ({proc.language}); "
                                  "the broker cannot prove it harmless")
    if proc.volatility in ("i", "s") or proc.name in PG_HARMLESS_VOLATILE:
        return None
    return SqlFinding(Risk.WRITE, f"{proc.name}() is a volatile built-in that may change data or server state")


_PROC_COLUMNS = ("p.oid, n.nspname, p.proname, p.provolatile, l.lanname FROM pg_proc p "
                 "JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang")
_IN_PATH = "(CASE WHEN q.s = '' THEN n.nspname = ANY (current_schemas(true)) ELSE n.nspname = q.s END)"

_CALLS = (f"SELECT q.s, q.n, {_PROC_COLUMNS} JOIN unnest(%s::text[], %s::text[]) AS q(s, n) "
          f"ON p.proname = q.n WHERE {_IN_PATH}")
# attribute notation calls a function that takes exactly one argument (the rest defaulted)
_ATTRIBUTES = _CALLS + " AND p.pronargs >= 1 AND p.pronargs - p.pronargdefaults <= 1"
_OPERATORS = (f"SELECT q.s, q.n, {_PROC_COLUMNS} JOIN pg_operator o ON p.oid IN (o.oprcode, o.oprrest, o.oprjoin) "
              f"JOIN pg_namespace n2 ON n2.oid = o.oprnamespace "
              f"JOIN unnest(%s::text[], %s::text[]) AS q(s, n) ON o.oprname = q.n "
              f"WHERE (CASE WHEN q.s = '' THEN n2.nspname = ANY (current_schemas(true)) ELSE n2.nspname = q.s END)")
# a cast to a type may run any cast function to it, its input and output functions, and a domain's checks
_TYPES = (
    f"WITH t AS (SELECT q.s, q.n, ty.oid, ty.typinput, ty.typoutput, ty.typbasetype, ty.typtype "  # noqa: S608
          f"FROM unnest(%s::text[], %s::text[]) AS q(s, n) JOIN pg_type ty ON ty.typname = q.n "
          f"JOIN pg_namespace tn ON tn.oid = ty.typnamespace "
          f"WHERE (CASE WHEN q.s = '' THEN tn.nspname = ANY (current_schemas(true)) ELSE tn.nspname = q.s END)), "
          f"f AS (SELECT s, n, typinput AS fn FROM t UNION SELECT s, n, typoutput FROM t "
          f"UNION SELECT t.s, t.n, c.castfunc FROM t JOIN pg_cast c ON c.casttarget IN (t.oid, t.typbasetype) "
          f"UNION SELECT t.s, t.n, d.refobjid FROM t JOIN pg_constraint k ON k.contypid = t.oid "
          f"JOIN pg_depend d ON d.classid = 'pg_constraint'::regclass AND d.objid = k.oid "
          f"AND d.refclassid = 'pg_proc'::regclass) "
          f"SELECT f.s, f.n, {_PROC_COLUMNS} JOIN f ON f.fn = p.oid")
_TYPE_NAMES = ("SELECT q.s, q.n FROM unnest(%s::text[], %s::text[]) AS q(s, n) JOIN pg_type ty ON ty.typname = q.n "
               "JOIN pg_namespace tn ON tn.oid = ty.typnamespace "
               "WHERE (CASE WHEN q.s = '' THEN tn.nspname = ANY (current_schemas(true)) ELSE tn.nspname = q.s END)")
# a relation: its kind, and the SQL that reading it runs (a view's definition, the USING clauses of
# its row-level security policies) and the partitions or children a scan of it also reads
_RELATIONS = """
SELECT q.s, q.n, c.oid, c.relkind, n.nspname, c.relname,
  CASE WHEN c.relkind = 'v' THEN pg_get_viewdef(c.oid) END,
  ARRAY(SELECT pg_get_expr(y.polqual, y.polrelid) FROM pg_policy y
        WHERE y.polrelid = c.oid AND c.relrowsecurity AND y.polqual IS NOT NULL),
  ARRAY(SELECT quote_ident(cn.nspname) || '.' || quote_ident(cc.relname) FROM pg_inherits i
        JOIN pg_class cc ON cc.oid = i.inhrelid JOIN pg_namespace cn ON cn.oid = cc.relnamespace
        WHERE i.inhparent = c.oid)
FROM unnest(%s::text[], %s::text[]) AS q(s, n)
LEFT JOIN pg_class c ON c.oid = to_regclass(CASE WHEN q.s = '' THEN quote_ident(q.n)
                                                 ELSE quote_ident(q.s) || '.' || quote_ident(q.n) END)
LEFT JOIN pg_namespace n ON n.oid = c.relnamespace
"""
_PROCS = f"SELECT {_PROC_COLUMNS} WHERE p.oid = ANY (%s::oid[])"


# --- the per-target cache -----------------------------------------------------------------------
@dataclass
class _Cache:
    created: float
    verdicts: dict[tuple[str, str, str], tuple[SqlFinding, ...]] = field(default_factory=dict)


class CatalogResolver:
    """Resolves statements against each target's catalog; thread-safe; verdicts cached per target."""

    def __init__(self, ttl: float = 60.0) -> None:
        self._ttl = ttl
        self._caches: dict[str, _Cache] = {}
        self._lock = threading.Lock()

    def _cache(self, target: str) -> _Cache:
        with self._lock:
            cache = self._caches.get(target)
            if cache is None or time.monotonic() - cache.created > self._ttl:
                cache = self._caches[target] = _Cache(time.monotonic())
            return cache

    def forget(self, target: str) -> None:
        """Drop a target's cached verdicts: a write may have replaced a function or a view, and
        the next read must be judged by the new definition, not by the cache's 60 s old one."""
        with self._lock:
            self._caches.pop(target, None)

    def findings(self, target: str, sql: str, query: Query) -> list[SqlFinding]:
        """Every reason the statement is not a read, as the target resolves it (empty: a read).

        ``query`` is called only for what the cache does not hold yet; its errors propagate."""
        refs = references(sql)
        if refs is None:
            return [SqlFinding(Risk.UNKNOWN, "PostgreSQL's grammar rejects the command")]
        return _dedupe(self._resolve(self._cache(target), refs, query, 0))

    def _resolve(self, cache: _Cache, refs: References, query: Query, depth: int) -> list[SqlFinding]:
        if depth > _MAX_DEPTH:
            return [SqlFinding(Risk.UNKNOWN, f"views nest more than {_MAX_DEPTH} deep")]
        wanted = {"call": refs.calls, "attribute": refs.attributes, "operator": refs.operators,
                  "type": refs.types, "relation": refs.relations}
        missing = {kind: sorted(n for n in names if (kind, *n) not in cache.verdicts) for kind, names in wanted.items()}
        if any(missing.values()):
            fresh = self._lookup(cache, missing, query, depth)
            with self._lock:
                cache.verdicts.update(fresh)
        out: list[SqlFinding] = []
        for kind, names in wanted.items():
            for name in names:
                out.extend(cache.verdicts.get((kind, *name), ()))
        return out

    def _lookup(self, cache: _Cache, missing: dict[str, list[Name]], query: Query,
                depth: int) -> dict[tuple[str, str, str], tuple[SqlFinding, ...]]:
        verdicts: dict[tuple[str, str, str], list[SqlFinding]] = {}

        def columns(names: list[Name]) -> tuple[list[str], list[str]]:
            return [s for s, _ in names], [n for _, n in names]

        def add_procs(kind: str, rows: Iterable[tuple[Any, ...]], what: str) -> None:
            for s, n, *proc in rows:
                found = judge(Proc(int(proc[0]), str(proc[1]), str(proc[2]), str(proc[3]), str(proc[4])))
                if found is not None:
                    verdicts.setdefault((kind, s, n), []).append(
                        SqlFinding(found.risk, f"{what.format(_show(s, n))} resolves to {proc[1]}.{proc[2]}(): "
                                            f"{found.reason}"))
                else:
                    verdicts.setdefault((kind, s, n), [])

        if missing["call"]:
            add_procs("call", query(_CALLS, columns(missing["call"])), "{}()")
            for s, n in missing["call"]:
                if ("call", s, n) not in verdicts:
                    verdicts[("call", s, n)] = [SqlFinding(Risk.UNKNOWN, f"no function {_show(s, n)}() is visible on "
                                                                      "the target; the broker cannot say what it does")]
        if missing["attribute"]:
            add_procs("attribute", query(_ATTRIBUTES, columns(missing["attribute"])),
                      "attribute notation .{} (a call when there is no such column)")
        if missing["operator"]:
            add_procs("operator", query(_OPERATORS, columns(missing["operator"])), "the operator {}")
        if missing["type"]:
            add_procs("type", query(_TYPES, columns(missing["type"])), "a cast to {}")
            known = {(str(s), str(n)) for s, n in query(_TYPE_NAMES, columns(missing["type"]))}
            for s, n in missing["type"]:
                if (s, n) not in known:
                    verdicts[("type", s, n)] = [SqlFinding(Risk.UNKNOWN,
                                                        f"no type {_show(s, n)} is visible on the target")]
        if missing["relation"]:
            for row in query(_RELATIONS, columns(missing["relation"])):
                key = ("relation", str(row[0]), str(row[1]))
                verdicts[key] = self._relation(cache, row, query, depth)
        for kind, names in missing.items():
            for s, n in names:
                verdicts.setdefault((kind, s, n), [])
        return {key: tuple(found) for key, found in verdicts.items()}

    def _relation(self, cache: _Cache, row: tuple[Any, ...], query: Query, depth: int) -> list[SqlFinding]:
        s, n, oid, relkind, schema, relname, viewdef, policies, children = row
        if oid is None:
            return [SqlFinding(Risk.UNKNOWN, f"no relation {_show(s, n)} is visible on the target; "
                                          "the broker cannot say what reading it runs")]
        if relkind == "f":
            return [SqlFinding(Risk.EXEC, f"{schema}.{relname} is a foreign table: reading it queries another server, "
                                       "outside the read-only transaction")]
        found: list[SqlFinding] = []
        texts = ([("its view definition", viewdef)] if viewdef else []) + [
            ("a row-level security policy", f"SELECT {expr}") for expr in policies or ()]
        for what, text in texts:
            refs = references(str(text).strip().rstrip(";"))
            if refs is None:
                found.append(SqlFinding(Risk.UNKNOWN, f"{what} of {schema}.{relname} could not be parsed"))
                continue
            for inner in self._resolve(cache, refs, query, depth + 1):
                found.append(SqlFinding(inner.risk, f"reading {schema}.{relname} runs {what}: {inner.reason}"))
        if children:  # names quoted by the server; parsed, never run
            refs = references("SELECT 1 FROM " + ", ".join(children))  # noqa: S608
            for inner in self._resolve(cache, refs or References(), query, depth + 1):
                found.append(SqlFinding(inner.risk,
                                        f"reading {schema}.{relname} also reads a partition: {inner.reason}"))
        return found


_MAX_DEPTH = 16


def _dedupe(findings: list[SqlFinding]) -> list[SqlFinding]:
    return list(dict.fromkeys(findings))


def _show(schema: str, name: str) -> str:
    return f"{schema}.{name}" if schema else name
