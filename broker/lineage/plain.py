"""Which uses of a sensitive column reveal no more than its placeholder (``analyse``'s "plain" uses):
the bare column as an output, ``count``/``count(DISTINCT …)`` of it, ``IS [NOT] NULL``, and a lookup by
a value the agent wrote itself in ``WHERE``/``HAVING``/``ON``. Everything else is a predicate."""

from __future__ import annotations

import re

from sqlglot import exp

Taint = frozenset[tuple[str, str]]  # as in analyse: (placeholder type, source column)

_BOOLEAN = (exp.And, exp.Or, exp.Not, exp.Paren)
NUMERIC = re.compile(r"(?:(?:tiny|small|medium|big)?int|integer|numeric|decimal|dec|float|double|real|"
                     r"(?:small)?money|bit|year|oid)\b|int[248]\b|float[48]\b", re.IGNORECASE)
"""Column types a number may be compared with as a lookup (the engines' spellings)."""


def _known(other: exp.Expression, numeric: bool) -> bool:
    """A value the agent wrote itself, compared as it is. A number (or a boolean, MySQL's 1/0) against a
    text column is not one: MySQL and SQL Server convert the text's numeric prefix (``'4111 1111 ...' =
    4111`` is true), which reads the start of the value."""
    if isinstance(other, (exp.Null, exp.Placeholder, exp.Parameter)):
        return True
    if isinstance(other, exp.Literal):
        return bool(other.is_string) or numeric
    if isinstance(other, exp.Neg) and isinstance(other.this, exp.Literal) and not other.this.is_string:
        return numeric
    return isinstance(other, exp.Boolean) and numeric


def allowed(node: exp.Expression) -> bool:
    """A projection on the ``ALLOWED`` list (its value reveals nothing the placeholder does not)."""
    if isinstance(node, exp.Window) and isinstance(node.this, exp.Count) and not node.args.get("order"):
        return _count_plain(node.this)
    if isinstance(node, exp.Count):
        return _count_plain(node)
    if isinstance(node, exp.Not):
        node = node.this
    return isinstance(node, exp.Is) and isinstance(node.expression, exp.Null) and isinstance(node.this, exp.Column)


def _count_plain(node: exp.Count) -> bool:
    inner = node.this
    if isinstance(inner, exp.Distinct):
        items = inner.expressions
        return len(items) == 1 and isinstance(items[0], (exp.Column, exp.Star))
    return inner is None or isinstance(inner, (exp.Column, exp.Star))


def plain_use(column: exp.Column | exp.TableColumn, top: exp.Expression, clause: str,
           resolved: tuple[Taint, bool] | None, numeric: bool = False) -> bool:
    """Whether this use of a sensitive column reveals no more than its placeholder."""
    chain: list[exp.Expression] = []
    current: exp.Expression = column
    while current is not top and current.parent is not None:
        current = current.parent
        chain.append(current)
    if clause == "expressions":
        inner = [n for n in chain if not isinstance(n, exp.Alias)]
        if column is top or not inner:
            return True  # the value itself: masked whole or by content, like the column
        first = inner[0]
        if isinstance(first, exp.Count) or (isinstance(first, exp.Distinct) and len(inner) > 1
                                            and isinstance(inner[1], exp.Count)):
            count = first if isinstance(first, exp.Count) else inner[1]
            rest = inner[inner.index(count) + 1:]
            return _count_plain(count) and (not rest or (len(rest) == 1 and isinstance(rest[0], exp.Window)
                                                          and rest[0].this is count))
        if isinstance(first, exp.Is) and isinstance(first.expression, exp.Null):
            return all(isinstance(n, exp.Not) for n in inner[1:])
        return False  # PARTITION BY too: the window sorts the rows by it, so their order follows it
    if clause in ("where", "having", "joins", "qualify"):
        if not chain:
            return False
        first = chain[0]
        if isinstance(first, (exp.EQ, exp.NEQ, exp.NullSafeEQ)):
            other = first.expression if first.this is column else first.this
            ok = _known(other, numeric)
        elif isinstance(first, exp.In):
            ok = first.this is column and not first.args.get("query") and all(
                _known(e, numeric) for e in first.expressions)
        elif isinstance(first, exp.Is):
            ok = isinstance(first.expression, exp.Null)
        else:
            ok = False
        return ok and all(isinstance(n, (*_BOOLEAN, exp.Where, exp.Having, exp.Join, exp.Qualify))
                          for n in chain[1:])
    return False
