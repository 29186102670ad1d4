"""SQL risk classification (first version: sqlglot only; hardened in the guardrails issue)."""

from __future__ import annotations

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from broker.guard import Classification, Risk

DIALECTS = {"postgres": "postgres", "mysql": "mysql", "tsql": "tsql"}


def _result(risk: Risk, reason: str, statement: str = "") -> Classification:
    return Classification(risk=risk, reason=reason, language="sql", statement=statement)


def classify_sql(sql: str, dialect: str) -> Classification:
    """Classify one SQL statement; anything not positively a plain read is not a read."""
    if dialect not in DIALECTS:
        return _result(Risk.UNKNOWN, f"unknown SQL dialect {dialect!r}")
    if "\x00" in sql:
        return _result(Risk.UNKNOWN, "the statement contains a NUL byte")
    try:
        trees = [t for t in sqlglot.parse(sql, read=DIALECTS[dialect]) if t is not None]
    except (ParseError, Exception) as exc:  # sqlglot raises several types; all mean "not understood"
        return _result(Risk.UNKNOWN, f"the statement could not be parsed ({type(exc).__name__})")
    if len(trees) != 1:
        return _result(Risk.UNKNOWN, f"expected exactly one statement, found {len(trees)}")
    tree = trees[0]
    name = tree.key.upper()
    if isinstance(tree, (exp.Drop, exp.TruncateTable)):
        return _result(Risk.DESTRUCTIVE, f"{name} removes objects or all their rows", name)
    if isinstance(tree, (exp.Delete, exp.Update)):
        if not tree.args.get("where"):
            return _result(Risk.DESTRUCTIVE, f"{name} without WHERE changes every row", name)
        return _result(Risk.WRITE, f"{name} changes rows", name)
    if isinstance(tree, (exp.Insert, exp.Merge)):
        return _result(Risk.WRITE, f"{name} changes rows", name)
    if isinstance(tree, (exp.Create, exp.Alter)):
        return _result(Risk.SCHEMA, f"{name} changes the schema", name)
    if isinstance(tree, exp.Grant):
        return _result(Risk.PRIVILEGE, "GRANT changes privileges", name)
    if isinstance(tree, (exp.Select, exp.Union)):
        for node in tree.walk():
            if isinstance(node, (exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Into, exp.Lock)):
                return _result(Risk.WRITE, f"the query contains {node.key.upper()}", "SELECT")
        return _result(Risk.READ, "a plain SELECT", "SELECT")
    return _result(Risk.UNKNOWN, f"{name} is not a statement the broker can prove harmless", name)
