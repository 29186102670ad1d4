"""Is an UPDATE or DELETE bounded? Only when its WHERE pins the target's rows to constants.

Spotting tautologies one by one (``1 = 1``, ``id = id``, ``id IS NOT NULL``, ``id = 3 OR id <> 3``,
``id > 0``) never ends, so the rule is the other way round, and sound for every such spelling: a
change is bounded only when its WHERE, read as a conjunction, ties a column of the target to
constants by equality (``col = 5``, ``col IN (1, 2)``, ``col = ANY('{1,2}')``, ``col = $1``), or ties
it by equality to a table that is so tied (``o.customer_id = c.id AND c.email = 'x'``), or to the
result of a bounded subquery (``col IN (SELECT id FROM t WHERE k = 1)``). An OR is bounded when every
branch is. Anything else — ranges, inequalities, ``IS [NOT] NULL``, functions of columns, ``NOT`` —
changes an unknown share of the table, and is ``destructive`` (it needs what deleting everything
needs). Ranges an operator wants to allow are a policy matter (approval), not the classifier's.

Both parse trees (PostgreSQL's own, through pglast, and sqlglot's for every dialect) are reduced to
one small form, ``Cond``, so both walkers apply the same rule.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp


@dataclass(frozen=True)
class Col:
    table: str | None  # qualifier as written (alias or table name), None when unqualified
    name: str


CONST = "const"
Side = Col | str | None  # a column, CONST, or anything else (None)


@dataclass(frozen=True)
class Cond:
    op: str  # "and" | "or" | "eq" | "other"
    parts: tuple[Cond, ...] = ()
    left: Side = None
    right: Side = None


OTHER = Cond("other")


@dataclass
class Scope:
    """The statement's tables: every name (alias or table) -> a canonical id; the target is id 0."""

    names: dict[str, int] = field(default_factory=dict)
    count: int = 1
    joins: list[Cond] = field(default_factory=list)

    def add(self, name: str, alias: str | None, target: bool = False) -> None:
        name, alias = name.lower(), (alias or "").lower()
        known = {self.names[n] for n in (name, alias) if n and n in self.names}
        ident = 0 if target or 0 in known else (known.pop() if known else self.count)
        if ident == self.count:
            self.count += 1
        for n in (name, alias):
            if n:
                self.names[n] = ident

    def table_of(self, col: Col) -> int | None:
        if col.table is None:
            return 0 if self.count == 1 else None  # unqualified: the target only when it is alone
        return self.names.get(col.table.lower())


def bounded(scope: Scope, where: Cond | None) -> bool:
    """True when ``where`` (and the join conditions) pin the target's rows to constants."""
    if where is None:
        return False
    pinned, edges = _pins(scope, Cond("and", (where, *scope.joins)))
    return 0 in _closure(pinned, edges)


def _pins(scope: Scope, cond: Cond) -> tuple[set[int], set[tuple[int, int]]]:
    if cond.op == "and":
        pinned: set[int] = set()
        edges: set[tuple[int, int]] = set()
        for part in cond.parts:
            p, e = _pins(scope, part)
            pinned |= p
            edges |= e
        return pinned, edges
    if cond.op == "or":
        branches = [_closure(*_pins(scope, part)) for part in cond.parts]
        return (set.intersection(*branches) if branches else set()), set()
    if cond.op == "eq":
        left, right = cond.left, cond.right
        if isinstance(left, Col) and right == CONST:
            return _table(scope, left), set()
        if isinstance(right, Col) and left == CONST:
            return _table(scope, right), set()
        if isinstance(left, Col) and isinstance(right, Col):
            a, b = scope.table_of(left), scope.table_of(right)
            if a is not None and b is not None and a != b:
                return set(), {(a, b)}
    return set(), set()


def _table(scope: Scope, col: Col) -> set[int]:
    table = scope.table_of(col)
    return set() if table is None else {table}


def _closure(pinned: set[int], edges: set[tuple[int, int]]) -> set[int]:
    pinned = set(pinned)
    grew = True
    while grew:
        grew = False
        for a, b in edges:
            if (a in pinned) != (b in pinned):
                pinned |= {a, b}
                grew = True
    return pinned


# --- PostgreSQL's parse tree (libpg_query JSON) --------------------------------------------------
_PG_CONST_KINDS = frozenset({"A_Const", "TypeCast", "TypeName", "String", "Integer", "Float", "Boolean",
                             "BitString", "ParamRef", "A_ArrayExpr", "A_Expr", "List", ""})


def pg_bounded(fields: dict[str, Any], nodes: Any, wrapped: Any) -> bool:
    """``fields`` of an UpdateStmt/DeleteStmt; ``nodes``/``wrapped`` walk libpg_query's JSON."""
    scope = Scope()
    relation = fields.get("relation") or {}
    scope.add(str(relation.get("relname") or ""), (relation.get("alias") or {}).get("aliasname"), target=True)
    for item in [*(fields.get("fromClause") or ()), *(fields.get("usingClause") or ())]:
        _pg_from(scope, wrapped(item), wrapped, nodes)
    where = wrapped(fields.get("whereClause"))
    return bounded(scope, _pg_cond(where, scope, nodes, wrapped) if where else None)


def _pg_from(scope: Scope, node: Any, wrapped: Any, nodes: Any) -> None:
    if node is None:
        return
    kind, fields = node
    if kind == "RangeVar":
        scope.add(str(fields.get("relname") or ""), (fields.get("alias") or {}).get("aliasname"))
    elif kind in ("RangeSubselect", "RangeFunction"):
        scope.add("", (fields.get("alias") or {}).get("aliasname") or f"#{scope.count}")
    elif kind == "JoinExpr":
        _pg_from(scope, wrapped(fields.get("larg")), wrapped, nodes)
        _pg_from(scope, wrapped(fields.get("rarg")), wrapped, nodes)
        quals = wrapped(fields.get("quals"))
        if quals is not None:
            scope.joins.append(_pg_cond(quals, scope, nodes, wrapped))


def _pg_cond(node: Any, scope: Scope, nodes: Any, wrapped: Any) -> Cond:
    kind, fields = node
    if kind == "BoolExpr":
        parts = tuple(_pg_cond(p, scope, nodes, wrapped) for p in (wrapped(a) for a in fields.get("args") or ()) if p)
        op = {"AND_EXPR": "and", "OR_EXPR": "or"}.get(str(fields.get("boolop")))
        return Cond(op, parts) if op else OTHER
    if kind == "A_Expr" and _pg_op(fields.get("name"), wrapped) == "=":
        left = _pg_side(wrapped(fields.get("lexpr")), nodes)
        if fields.get("kind") == "AEXPR_OP":
            return Cond("eq", left=left, right=_pg_side(wrapped(fields.get("rexpr")), nodes))
        if fields.get("kind") == "AEXPR_OP_ANY":
            right = _pg_side(wrapped(fields.get("rexpr")), nodes)
            return Cond("eq", left=left, right=right if right == CONST else None)
        if fields.get("kind") == "AEXPR_IN":
            rexpr = fields.get("rexpr")
            items = (rexpr.get("List") or {}).get("items") if isinstance(rexpr, dict) else None
            items = items if isinstance(items, list) else []
            consts = items and all(_pg_side(wrapped(i), nodes) == CONST for i in items)
            return Cond("eq", left=left, right=CONST if consts else None)
    if kind == "SubLink" and fields.get("subLinkType") == "ANY_SUBLINK" and \
            _pg_op(fields.get("operName"), wrapped) in ("=", None):
        left = _pg_side(wrapped(fields.get("testexpr")), nodes)
        sub = wrapped(fields.get("subselect"))
        return Cond("eq", left=left, right=CONST if sub and _pg_select_bounded(sub, nodes, wrapped) else None)
    return OTHER


def _pg_select_bounded(node: Any, nodes: Any, wrapped: Any) -> bool:
    kind, fields = node
    if kind != "SelectStmt" or fields.get("op") not in (None, "SETOP_NONE"):
        return False
    limit = wrapped(fields.get("limitCount"))
    if limit is not None and _pg_side(limit, nodes) == CONST:
        return True
    tables = [wrapped(t) for t in fields.get("fromClause") or ()]
    if len(tables) != 1 or tables[0] is None or tables[0][0] != "RangeVar":
        return False
    return pg_bounded({"relation": tables[0][1], "whereClause": fields.get("whereClause")}, nodes, wrapped)


def _pg_op(names: Any, wrapped: Any) -> str | None:
    if not names:
        return None
    last = wrapped(names[-1])
    return str(last[1].get("sval")) if last and last[0] == "String" else ""


def _pg_side(node: Any, nodes: Any) -> Side:
    if node is None:
        return None
    kind, fields = node
    if kind == "ColumnRef":
        parts = [(p.get("String") or {}).get("sval") for p in fields.get("fields") or () if isinstance(p, dict)]
        if not parts or any(not isinstance(p, str) for p in parts):
            return None
        return Col(parts[-2] if len(parts) >= 2 else None, parts[-1])
    return CONST if all(k in _PG_CONST_KINDS for k, _ in nodes(kind, fields)) else None


# --- sqlglot's parse tree (every dialect) --------------------------------------------------------
_SG_CONST = (exp.Literal, exp.Null, exp.Boolean, exp.Placeholder, exp.Parameter, exp.Neg, exp.Paren, exp.Cast,
             exp.TryCast, exp.DataType, exp.Array, exp.Identifier, exp.Var, exp.Binary, exp.Tuple, exp.SessionParameter)


def sqlglot_bounded(node: exp.Update | exp.Delete) -> bool:
    scope = Scope()
    target = node.this
    targets = [target] if isinstance(target, exp.Table) else []
    for table in targets:
        scope.add(table.name, table.alias or None, target=True)
    for table in node.args.get("tables") or ():  # MySQL DELETE t1 FROM t1 JOIN t2
        if isinstance(table, exp.Table):
            scope.add(table.name, table.alias or None, target=True)
    sources: list[exp.Expression] = []
    if isinstance(target, exp.Table):
        sources += [j for j in target.args.get("joins") or ()]
    frm = node.args.get("from") or node.args.get("from_")
    if isinstance(frm, exp.From):
        sources += [frm.this, *(frm.this.args.get("joins") or ())]
    using = node.args.get("using")
    if isinstance(using, list):
        sources += using
    sources += list(node.args.get("joins") or ())
    for source in sources:
        _sg_from(scope, source)
    where = node.args.get("where")
    return bounded(scope, _sg_cond(where.this, scope) if isinstance(where, exp.Where) else None)


def _sg_from(scope: Scope, node: exp.Expression) -> None:
    if isinstance(node, exp.Join):
        _sg_from(scope, node.this)
        on = node.args.get("on")
        if isinstance(on, exp.Expression):
            scope.joins.append(_sg_cond(on, scope))
    elif isinstance(node, exp.Table):
        scope.add(node.name, node.alias or None)
    elif isinstance(node, exp.Expression):
        scope.add("", node.alias or f"#{scope.count}")


def _sg_cond(node: exp.Expression, scope: Scope) -> Cond:
    if isinstance(node, exp.Paren):
        return _sg_cond(node.this, scope)
    if isinstance(node, exp.And):
        return Cond("and", tuple(_sg_cond(p, scope) for p in node.flatten()))
    if isinstance(node, exp.Or):
        return Cond("or", tuple(_sg_cond(p, scope) for p in node.flatten()))
    if isinstance(node, exp.EQ):
        right = node.expression
        if isinstance(right, exp.Any):
            return Cond("eq", left=_sg_side(node.this), right=CONST if _sg_side(right.this) == CONST else None)
        return Cond("eq", left=_sg_side(node.this), right=_sg_side(right))
    if isinstance(node, exp.In):
        query = node.args.get("query")
        if query is not None:
            inner = query.this if isinstance(query, exp.Subquery) else query
            ok = isinstance(inner, exp.Select) and _sg_select_bounded(inner)
        else:
            ok = bool(node.expressions) and all(_sg_side(e) == CONST for e in node.expressions)
        return Cond("eq", left=_sg_side(node.this), right=CONST if ok else None)
    return OTHER


def _sg_select_bounded(select: exp.Select) -> bool:
    limit = select.args.get("limit")
    if isinstance(limit, exp.Limit) and _sg_side(limit.expression) == CONST:
        return True
    frm = select.args.get("from") or select.args.get("from_")
    if not isinstance(frm, exp.From) or not isinstance(frm.this, exp.Table) or select.args.get("joins"):
        return False
    fake = exp.Delete(this=frm.this, where=select.args.get("where"))
    return sqlglot_bounded(fake)


def _sg_side(node: exp.Expression | None) -> Side:
    if isinstance(node, exp.Column) and isinstance(node.this, exp.Identifier):
        return Col(node.table or None, node.name)
    if node is None:
        return None
    return CONST if all(isinstance(n, _SG_CONST) for n in _walk(node)) else None


def _walk(node: exp.Expression) -> Iterable[exp.Expression]:
    yield from node.walk()


UNBOUNDED = ("{} whose WHERE does not pin the target's rows to constants (key = value, key IN (...)) "
             "may change every row")
