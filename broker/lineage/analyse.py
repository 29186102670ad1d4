"""Column lineage of one SQL statement, before it runs: which output columns derive from a sensitive
column, and where a sensitive column shapes the answer without being its value.

The statement is parsed and qualified with sqlglot against the target's schema (stars expanded,
every column bound to its table); then every query block is walked: CTEs (recursive ones to a fixed
point), derived tables, LATERAL, table functions, set operations, scalar and ``IN``/``EXISTS``
subqueries. An output column carries the sensitive types of every column it is computed from,
through any function, operator, cast, aggregate, window or JSON/array builder; such an output is
masked whole. Only the ``ALLOWED`` forms pass through clean.

A sensitive column used anywhere but as a plain output is a *predicate*: the answer's shape then
depends on its value (``WHERE email LIKE 'a%'``, ``ORDER BY``, ``CASE``, a window ``ORDER BY``, a
function argument, a join condition, ``pg_sleep`` under a ``CASE``), which lets an agent read it bit
by bit. Every such use is reported; the execute path turns it into the ``sensitive-predicate`` risk.
Plain uses that reveal no more than the placeholder do not count: the bare column as an output,
``count(col)``, ``count(DISTINCT col)``, ``col IS [NOT] NULL``, and a lookup by a value the agent
already knows (``col = 'literal'``, ``col <> 'literal'``, ``col IN ('a', 'b')``) in
``WHERE``/``HAVING``/``ON``. ``GROUP BY``, ``DISTINCT``, ``UNION``/``INTERSECT``/``EXCEPT`` (without
``ALL``) and ``PARTITION BY`` over a sensitive column are predicates: the engine may sort the rows by
it (a large table, a key that cannot be hashed, a window), so their order and what a ``LIMIT`` keeps
follow the column as ``ORDER BY`` would; with a guess unioned in beside the stored value, that reads
it bit by bit.

Unresolvable lineage fails closed: every output masked whole (``Lineage.outputs`` is None), and a
predicate when the text names a sensitive column at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from broker.lineage.plain import NUMERIC, allowed, plain_use
from broker.lineage.qualify import qualified_tree
from broker.lineage.schema import Schema, TableKey
from broker.lineage.sensitivity import FREE_TEXT, Sensitivity

UNRESOLVED = "unresolved"
"""The placeholder type of an output whose lineage the broker could not resolve."""

ALLOWED = ("count(*)", "count(col)", "count(DISTINCT col)", "col IS NULL", "col IS NOT NULL",
           "count(...) OVER (PARTITION BY col)")
"""Projections whose value reveals no more than the placeholder would: their values pass through clean
(``PARTITION BY`` a sensitive column still makes the statement a predicate: see the module docstring)."""

_CLAUSES = {"where": "WHERE", "having": "HAVING", "joins": "JOIN ... ON", "group": "GROUP BY",
            "order": "ORDER BY", "qualify": "QUALIFY", "distinct": "DISTINCT ON", "limit": "LIMIT",
            "offset": "OFFSET", "from_": "FROM (a table function's argument)", "expressions": "the select list",
            "windows": "WINDOW", "connect": "CONNECT BY", "prewhere": "PREWHERE", "laterals": "LATERAL",
            "match": "MATCH_RECOGNIZE", "sample": "TABLESAMPLE", "settings": "SETTINGS", "cluster": "CLUSTER BY",
            "distribute": "DISTRIBUTE BY", "sort": "SORT BY", "locks": "FOR UPDATE"}

Taint = frozenset[tuple[str, str]]  # (placeholder type, source "schema.table.column")
_CLEAN: Taint = frozenset()
_EXPLAIN = re.compile(r"^\s*EXPLAIN\b\s*(?:\((?:[^()]|\([^()]*\))*\)\s*|(?:ANALY[SZ]E|VERBOSE|EXTENDED|PARTITIONS|"
                      r"FORMAT\s*=\s*\w+)\b\s*)*", re.IGNORECASE)


@dataclass(frozen=True)
class Output:
    """One output column: its name, and how it must be masked."""

    name: str
    kind: str | None = None
    """Mask every value whole as this type; None: clean (content masking only)."""
    sources: tuple[str, ...] = ()
    """The sensitive columns it derives from."""
    content_only: bool = False
    """A free-text column passed through as it is: masked by content (its secrets), not whole."""

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"name": self.name, "mask": self.kind}
        if self.sources:
            body["sources"] = list(self.sources)
        if self.content_only:
            body["content_only"] = True
        return body


@dataclass(frozen=True)
class Lineage:
    """What lineage says about one statement (``outputs`` None: mask every output column whole)."""

    outputs: tuple[Output, ...] | None
    predicates: tuple[str, ...] = ()
    touches: bool = False
    """The statement reads a sensitive column somewhere: its errors are never echoed."""
    unresolved: str = ""
    applies: bool = True
    """False for statements without result columns of their own (EXPLAIN, SHOW): content masking only."""

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"touches_sensitive": self.touches}
        if self.outputs is not None:
            body["outputs"] = [o.to_dict() for o in self.outputs]  # by position: the result's columns
        if self.predicates:
            body["predicates"] = list(self.predicates)
        if self.unresolved:
            body["unresolved"] = self.unresolved
        if not self.applies:
            body["applies"] = False
        return body


@dataclass
class _Source:
    columns: dict[str, tuple[Taint, bool]] = field(default_factory=dict)
    default: tuple[Taint, bool] | None = None  # a function's or unknown relation's every column

    def column(self, name: str) -> tuple[Taint, bool] | None:
        found = self.columns.get(name.lower())
        return found if found is not None else self.default

    def whole(self) -> Taint:
        out = set(self.default[0]) if self.default else set()
        for taint, _ in self.columns.values():
            out |= taint
        return frozenset(out)


@dataclass
class _Env:
    parent: _Env | None = None
    ctes: dict[str, list[tuple[str, Taint, bool]]] = field(default_factory=dict)
    sources: dict[str, _Source] = field(default_factory=dict)

    def cte(self, name: str) -> list[tuple[str, Taint, bool]] | None:
        env: _Env | None = self
        while env is not None:
            if name in env.ctes:
                return env.ctes[name]
            env = env.parent
        return None

    def source(self, alias: str) -> _Source | None:
        env: _Env | None = self
        while env is not None:
            if alias in env.sources:
                return env.sources[alias]
            env = env.parent
        return None

    def by_column(self, name: str) -> tuple[Taint, bool] | None:
        env: _Env | None = self
        while env is not None:
            for source in env.sources.values():
                if name.lower() in source.columns:
                    return source.columns[name.lower()]
            env = env.parent
        return None


class _Unresolvable(Exception):
    """Lineage cannot be told for this statement (the reason is the message; no values in it)."""


class _Walker:
    def __init__(self, schema: Schema, sensitivity: Sensitivity) -> None:
        self.schema = schema
        self.sensitivity = sensitivity
        self.predicates: list[str] = []
        self.touches = False
        self._memo: dict[int, list[tuple[str, Taint, bool]]] = {}

    # --- query blocks -------------------------------------------------------------------
    def query(self, node: exp.Expression, env: _Env) -> list[tuple[str, Taint, bool]]:
        key = id(node)
        if key not in self._memo:
            self._memo[key] = self._query(node, env)
        return self._memo[key]

    def _query(self, node: exp.Expression, env: _Env) -> list[tuple[str, Taint, bool]]:
        if isinstance(node, exp.Subquery):
            inner = _Env(env)
            self._ctes(node, inner)
            return self.query(node.this, inner)
        if isinstance(node, exp.SetOperation):
            inner = _Env(env)
            self._ctes(node, inner)
            left, right = self.query(node.left, inner), self.query(node.right, inner)
            if len(left) != len(right):
                raise _Unresolvable("the branches of a set operation differ in width")
            merged = [(name, lt | rt, lb and rb) for (name, lt, lb), (_, rt, rb) in zip(left, right, strict=True)]
            if node.args.get("distinct"):
                self._deduplicated(merged, "UNION/INTERSECT/EXCEPT (duplicates removed)")
            self._clauses(node, inner, merged)
            return merged
        if isinstance(node, exp.Values):
            rows = [row.expressions if isinstance(row, exp.Tuple) else [row] for row in node.expressions]
            width = len(rows[0]) if rows else 0
            out = []
            for i in range(width):
                taint = frozenset().union(*(self.taint(r[i], env, []) for r in rows if i < len(r)))
                out.append((f"column{i + 1}", taint, False))
            return out
        if isinstance(node, exp.Select):
            return self._select(node, _Env(env))
        raise _Unresolvable(f"a {node.key} where a query was expected")

    def _ctes(self, node: exp.Expression, env: _Env) -> None:
        with_ = node.args.get("with_") or node.args.get("with")
        if not with_:
            return
        for cte in with_.expressions:
            name = cte.alias_or_name.lower()
            body = cte.this
            if with_.args.get("recursive") and isinstance(body, exp.SetOperation):
                env.ctes[name] = self.query(body.left, env)
                for _ in range(4):  # to a fixed point: taints only grow
                    self._memo.clear()
                    result = self.query(body, env)
                    if result == env.ctes[name]:
                        break
                    env.ctes[name] = result
            else:
                env.ctes[name] = self.query(body, env)
            names = [c.name for c in (cte.args.get("alias").columns if cte.args.get("alias") else [])]
            if names:
                env.ctes[name] = [(n, t, b) for n, (_, t, b) in zip(names, env.ctes[name], strict=False)]

    def _select(self, node: exp.Select, env: _Env) -> list[tuple[str, Taint, bool]]:
        self._ctes(node, env)
        from_ = node.args.get("from_") or node.args.get("from")
        if from_ is not None:
            self._source(from_.this, env)
        for join in node.args.get("joins") or ():
            self._source(join.this, env)
        for lateral in node.args.get("laterals") or ():
            self._source(lateral, env)
        aliases: list[tuple[str, Taint, bool]] = []
        for projection in node.expressions:
            taint, bare = self._projection(projection, env, aliases)
            aliases.append((projection.alias_or_name, taint, bare))
        distinct = node.args.get("distinct")
        if isinstance(distinct, exp.Distinct) and not distinct.args.get("on"):
            self._deduplicated(aliases, "DISTINCT")
        self._clauses(node, env, aliases)
        return aliases

    def _deduplicated(self, columns: list[tuple[str, Taint, bool]], clause: str) -> None:
        """Removing duplicates may sort the rows by their values (the engine's choice): their order,
        and what a ``LIMIT`` keeps, then follow a sensitive column's order, as ``ORDER BY`` would."""
        for _, taint, _ in columns:
            if taint:
                sources = sorted({s for kind, s in taint if kind != UNRESOLVED}) or ["a column of unknown lineage"]
                self.predicates.append(f"{', '.join(sources)} shapes the answer in {clause}")

    def _source(self, node: exp.Expression, env: _Env) -> None:
        alias = node.alias_or_name.lower() if node.alias_or_name else ""
        names = [c.name if isinstance(c, (exp.Identifier, exp.ColumnDef)) else str(c)
                 for c in (node.args["alias"].columns if node.args.get("alias") else [])]
        source = _Source()
        inner = node.this if isinstance(node, exp.Lateral) else node
        if isinstance(inner, exp.Table) and isinstance(inner.this, exp.Identifier):
            cte = None if inner.db else env.cte(inner.name.lower())
            if cte is not None:
                for name, taint, bare in cte:
                    source.columns[name.lower()] = (taint, bare)
            else:
                key = self.schema.find(inner.db, inner.name)
                if key is None:
                    raise _Unresolvable(f"the target has no relation {inner.name!r} the broker knows of")
                for column in self.schema.tables[key]:
                    source.columns[column.lower()] = (self._base(key, column), True)
            alias = alias or inner.name.lower()
        elif isinstance(inner, (exp.Query, exp.Values)):
            for name, taint, bare in self.query(inner, env):
                source.columns[name.lower()] = (taint, bare)
        else:  # a table function (generate_series, unnest, jsonb_to_recordset...): its arguments' taint
            functions = ([inner.this] if inner.this is not None else list(inner.args.get("rows_from") or ())) \
                if isinstance(inner, exp.Table) else [inner]  # ROWS FROM (f(...), g(...)): every function
            if not functions or not all(isinstance(f, exp.Expression) for f in functions):
                raise _Unresolvable(f"a {inner.key} in FROM the broker cannot follow")
            taint = frozenset().union(*(self.taint(f, env, []) for f in functions))
            for function in functions:
                self._uses(function, env, [], "from_")
            source.default = (taint, False)
        if names and source.columns:
            values = list(source.columns.values())
            source.columns = {n.lower(): v for n, v in zip(names, values, strict=False)}
        elif names:
            source.columns = {n.lower(): source.default or (_CLEAN, False) for n in names}
        env.sources[alias] = source

    def _base(self, key: TableKey, column: str) -> Taint:
        kind = self.sensitivity.kind(key, column)
        if kind is None:
            return _CLEAN
        return frozenset({(kind, f"{key[0]}.{key[1]}.{column}")})

    # --- expressions ----------------------------------------------------------------------
    def _projection(self, projection: exp.Expression, env: _Env,
                    aliases: list[tuple[str, Taint, bool]]) -> tuple[Taint, bool]:
        node = projection.this if isinstance(projection, exp.Alias) else projection
        taint = self.taint(node, env, aliases)
        if allowed(node):
            return _CLEAN, False
        if isinstance(node, (exp.Column, exp.TableColumn)):
            resolved = self._column(node, env, aliases)
            return resolved if resolved is not None else (taint, False)
        return taint, False

    def taint(self, node: exp.Expression, env: _Env, aliases: list[tuple[str, Taint, bool]]) -> Taint:
        """Every sensitive source ``node`` is computed from (nested queries included)."""
        if isinstance(node, exp.Query):
            return frozenset().union(*(t for _, t, _ in self.query(node, env)))
        if isinstance(node, (exp.Column, exp.TableColumn)):
            resolved = self._column(node, env, aliases)
            if resolved is None:
                return frozenset({(UNRESOLVED, node.name)})
            return resolved[0]
        out: set[tuple[str, str]] = set()
        for child in node.iter_expressions():
            out |= self.taint(child, env, aliases)
        return frozenset(out)

    def _column(self, node: exp.Column | exp.TableColumn, env: _Env,
                aliases: list[tuple[str, Taint, bool]]) -> tuple[Taint, bool] | None:
        name = node.name
        if isinstance(node, exp.TableColumn):  # PostgreSQL: a table alias as a value is its whole row
            whole = env.source(name.lower())
            return (whole.whole(), False) if whole is not None else None
        if isinstance(node.this, exp.Star):
            source = env.source(node.table.lower()) if node.table else None
            return (source.whole(), False) if source is not None else None
        if node.table:
            source = env.source(node.table.lower())
            if source is not None:
                return source.column(name)
            whole = env.source(name.lower())
            return (whole.whole(), False) if whole is not None else None
        for alias, taint, bare in aliases:
            if alias.lower() == name.lower():
                return taint, bare
        found = env.by_column(name)
        if found is not None:
            return found
        whole = env.source(name.lower())  # PostgreSQL: a table alias as a value is the whole row
        return (whole.whole(), False) if whole is not None else None

    # --- where sensitive columns are used -------------------------------------------------
    def _clauses(self, node: exp.Expression, env: _Env, aliases: list[tuple[str, Taint, bool]]) -> None:
        for key, value in node.args.items():
            if key in ("with_", "with", "from_", "from") and not isinstance(node, exp.Select):
                continue
            if isinstance(node, exp.SetOperation) and key in ("this", "expression"):
                continue
            for child in value if isinstance(value, list) else [value]:
                if isinstance(child, exp.Expression):
                    if key in ("with_", "with"):
                        continue
                    if key in ("from_", "from") and isinstance(child, exp.From):
                        continue  # sources were resolved; their own subqueries checked themselves
                    if key == "joins":
                        on = child.args.get("on")
                        if on is not None:
                            self._uses(on, env, aliases, "joins", root=child)
                        for using in child.args.get("using") or ():
                            self._uses(using, env, aliases, "joins", root=child)
                        continue
                    if key == "laterals":
                        continue
                    self._uses(child, env, aliases, key)

    def _uses(self, node: exp.Expression, env: _Env, aliases: list[tuple[str, Taint, bool]], clause: str,
              root: exp.Expression | None = None) -> None:
        """Report every sensitive column under ``node`` whose use is not plain."""
        stack = [node]
        while stack:
            current = stack.pop()
            if isinstance(current, exp.Query):
                self.query(current, env)  # checks its own clauses
                continue
            if isinstance(current, (exp.Column, exp.TableColumn)):
                resolved = self._column(current, env, aliases)
                taint = resolved[0] if resolved is not None else frozenset({(UNRESOLVED, current.name)})
                if not taint:
                    continue
                if any(kind != UNRESOLVED for kind, _ in taint):
                    self.touches = True
                if not plain_use(current, node if root is None else root, clause, resolved, self._numeric(taint)):
                    sources = sorted({s for kind, s in taint if kind != UNRESOLVED}) or ["a column of unknown lineage"]
                    self.predicates.append(f"{', '.join(sources)} shapes the answer in {_CLAUSES.get(clause, clause)}")
                continue
            stack.extend(current.iter_expressions())


    def _numeric(self, taint: Taint) -> bool:
        """Whether every sensitive source is a numeric column (a number compared with it is a lookup)."""
        for kind, source in taint:
            schema_name, _, rest = source.partition(".")
            table, _, column = rest.rpartition(".")
            key = (schema_name, table)
            columns, types = self.schema.tables.get(key, ()), self.schema.types.get(key, ())
            if kind == UNRESOLVED or column not in columns or len(types) != len(columns):
                return False
            if not NUMERIC.match(types[columns.index(column)]):
                return False
        return True


def analyse(sql: str, dialect: str, schema: Schema, sensitivity: Sensitivity) -> Lineage:
    """The lineage of one statement (see the module docstring); never raises on bad SQL."""
    named = _names_sensitive(sql, sensitivity)
    try:
        trees = [t for t in sqlglot.parse(sql, read=dialect) if t is not None and not isinstance(t, exp.Semicolon)]
    except (SqlglotError, RecursionError, ValueError):
        return _unknown("the statement could not be parsed for lineage", named)
    if len(trees) != 1:
        return _unknown("expected exactly one statement", named)
    tree = trees[0]
    explained = _EXPLAIN.match(sql)
    if explained and isinstance(tree, exp.Command):  # EXPLAIN ANALYZE ...: its plan's row counts answer
        inner = analyse(sql[explained.end():], dialect, schema, sensitivity)
        return Lineage((), inner.predicates, inner.touches or named, inner.unresolved, applies=False)
    if isinstance(tree, exp.Describe) and isinstance(tree.this, exp.Query):  # EXPLAIN: its plan, no values
        inner = analyse(tree.this.sql(dialect), dialect, schema, sensitivity)
        return Lineage((), inner.predicates, inner.touches or named, inner.unresolved, applies=False)
    if not isinstance(tree, (exp.Query, exp.Values)):
        returning = any(tree.find_all(exp.Returning))
        return Lineage(None if returning else (), touches=named, applies=returning,
                       unresolved="a changing statement's RETURNING is masked whole" if returning else "")
    try:
        qualified = qualified_tree(tree, schema, dialect)
    except (SqlglotError, RecursionError, ValueError, KeyError) as exc:
        return _unknown(f"lineage could not be resolved ({type(exc).__name__})", named)
    walker = _Walker(schema, sensitivity)
    try:
        columns = walker.query(qualified, _Env())
    except _Unresolvable as exc:
        return _unknown(str(exc), named)
    except RecursionError:
        return _unknown("the statement nests too deeply", named)
    except (AttributeError, TypeError, KeyError, IndexError, ValueError) as exc:  # a tree shape not foreseen
        return _unknown(f"lineage could not be followed ({type(exc).__name__})", named)
    outputs = tuple(_output(name, taint, bare) for name, taint, bare in columns)
    touches = walker.touches or any(o.kind or o.content_only for o in outputs)
    return Lineage(outputs, tuple(dict.fromkeys(walker.predicates)), touches)


def _output(name: str, taint: Taint, bare: bool) -> Output:
    if not taint:
        return Output(name)
    kinds = sorted({kind for kind, _ in taint})
    sources = tuple(sorted({s for kind, s in taint if kind != UNRESOLVED}))
    if bare and kinds == [FREE_TEXT]:
        return Output(name, None, sources, content_only=True)
    kind = kinds[0] if len(kinds) == 1 else ("sensitive" if UNRESOLVED not in kinds else UNRESOLVED)
    return Output(name, kind, sources)


def _unknown(reason: str, named: bool) -> Lineage:
    predicates = (f"{reason}, and it names a sensitive column",) if named else ()
    return Lineage(None, predicates, touches=True, unresolved=reason)


def _names_sensitive(sql: str, sensitivity: Sensitivity) -> bool:
    names = sensitivity.names
    if not names:
        return False
    words = {w.lower() for w in re.findall(r"[A-Za-z_][A-Za-z0-9_$]*", sql)}
    return not names.isdisjoint(words)
