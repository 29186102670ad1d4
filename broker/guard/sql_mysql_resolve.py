"""What a MySQL/MariaDB read will call through the views it names, resolved against the target.

The static classifier judges the functions written in the statement. A view runs the functions in
its own definition: ``CREATE VIEW v AS SELECT GET_LOCK('job', 0)`` makes ``SELECT * FROM v`` take
a named lock, and a read-only transaction does not stop that (nor ``SLEEP``, ``BENCHMARK`` or a
stored function that only reads but waits). So a statement the classifier calls ``read`` is
resolved here: every relation it names that is a view on the target is classified by its own
definition (``information_schema.VIEWS``), recursively, and the statement stays ``read`` only when
every one of them is a read. A view whose definition the broker's role cannot see (it needs
``SHOW VIEW``) is not a read: unknown is never a read.

Stored functions need no look-up: the classifier already refuses any function that is not a
built-in it knows to be read-only. MySQL has no attribute-notation calls, and triggers do not fire
on SELECT. View definitions are cached per target for ``ttl`` seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlglot
from sqlglot import exp

from broker.guard import Risk
from broker.guard._target_cache import TargetCache
from broker.guard.sql_rules import SqlFinding

Query = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]
"""(SQL with %s placeholders, parameters) -> rows; run by the engine on the target."""

Name = tuple[str, str]  # (schema, name), lower-cased: matched without regard to case (over-approximation)

_VIEWS_SQL = ("SELECT TABLE_SCHEMA, TABLE_NAME, VIEW_DEFINITION FROM information_schema.VIEWS "
              "WHERE TABLE_SCHEMA NOT IN ('information_schema', 'performance_schema')")
_MAX_DEPTH = 16


def relations(sql: str, default_schema: str) -> set[Name]:
    """Every table or view a statement names (CTE names excluded), qualified with ``default_schema``."""
    tree = sqlglot.parse_one(sql, dialect="mysql")
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    found: set[Name] = set()
    for table in tree.find_all(exp.Table):
        name = table.name.lower()
        schema = (table.db or "").lower()
        if not name or (not schema and name in ctes):
            continue
        found.add((schema or default_schema.lower(), name))
    return found


class ViewResolver:
    """Per-target cache of view definitions, and the findings a statement's views add."""

    def __init__(self, *, ttl: float = 60.0) -> None:
        self._views: TargetCache[dict[Name, str | None]] = TargetCache(ttl)

    def findings(self, target: str, sql: str, default_schema: str, query: Query) -> list[SqlFinding]:
        """The reasons the views a statement names make it more than a read (empty: it stays one)."""
        from broker.guard.sql import classify_sql  # the classifier, applied to each view's definition

        views = self._definitions(target, query)
        if not views:
            return []
        out: list[SqlFinding] = []
        seen: set[Name] = set()
        pending = [(name, 0) for name in relations(sql, default_schema)]
        while pending:
            name, depth = pending.pop()
            if name in seen or name not in views:
                continue
            seen.add(name)
            label = f"{name[0]}.{name[1]}"
            definition = views[name]
            if not definition:
                out.append(SqlFinding(Risk.UNKNOWN, f"the definition of view {label} is not visible to the broker's "
                                                 "role (it needs SHOW VIEW), so what it calls is unknown"))
                continue
            if depth >= _MAX_DEPTH:
                out.append(SqlFinding(Risk.UNKNOWN, f"view {label} nests views more than {_MAX_DEPTH} deep"))
                continue
            verdict = classify_sql(definition, "mysql")
            if verdict.risk is not Risk.READ:
                out.append(SqlFinding(verdict.risk, f"view {label} runs {verdict.reason}"))
                continue
            try:
                pending.extend((inner, depth + 1) for inner in relations(definition, name[0]))
            except sqlglot.errors.ParseError:
                out.append(SqlFinding(Risk.UNKNOWN, f"the definition of view {label} could not be parsed"))
        return out

    def _definitions(self, target: str, query: Query) -> dict[Name, str | None]:
        return self._views.get(target, lambda: {
            (str(schema).lower(), str(name).lower()): (str(definition) if definition else None)
            for schema, name, definition in query(_VIEWS_SQL, ())})

    def forget(self, target: str) -> None:
        """Drop a target's cached definitions (e.g. after an approved DDL change)."""
        self._views.forget(target)
