"""A target's schema as lineage needs it: every visible table's columns, the search path, and
which view columns may carry a sensitive base column.

Read from ``information_schema`` (and, for views, their definitions) through a ``Query`` callable
the engine supplies on its own read-only connection, cached per target for ``ttl`` seconds and
dropped early when the target says a column or table does not exist (``invalidate``): the
statement that failed is then analysed again against a fresh copy.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

Query = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]
"""(SQL with %s placeholders, parameters) -> rows; run by the engine on the target."""

TableKey = tuple[str, str]  # (schema, table), as the server folded them


@dataclass(frozen=True)
class Schema:
    """Columns per table (ordered), the order unqualified names are looked up in, and views'
    definitions (so a view over a sensitive column is sensitive too)."""

    tables: dict[TableKey, tuple[str, ...]]
    search_path: tuple[str, ...] = ("public",)
    views: dict[TableKey, str] = field(default_factory=dict)
    read_at: float = 0.0
    types: dict[TableKey, tuple[str, ...]] = field(default_factory=dict)
    """Each table's column types, in column order (the engine's names; arrays end in ``[]``)."""

    def find(self, schema: str, table: str) -> TableKey | None:
        """The table a (possibly unqualified) name means, or None when the target has none."""
        if schema:
            key = (schema, table)
            return key if key in self.tables else self._folded(schema, table)
        for candidate in self.search_path:
            if (candidate, table) in self.tables:
                return (candidate, table)
        for candidate in self.search_path:
            found = self._folded(candidate, table)
            if found is not None:
                return found
        return None

    def _folded(self, schema: str, table: str) -> TableKey | None:
        """MySQL and SQL Server compare names without case (PostgreSQL folded them already)."""
        lowered = (schema.lower(), table.lower())
        for key in self.tables:
            if (key[0].lower(), key[1].lower()) == lowered:
                return key
        return None


SchemaReader = Callable[[Query], Schema]
"""Reads a ``Schema`` with a ``Query`` (one per engine: ``read_postgres``, ``read_mysql``, ``read_mssql``)."""


def read_postgres(query: Query) -> Schema:
    """Every column the role can see (system catalogs included), the search path, view definitions."""
    rows = query("SELECT table_schema, table_name, column_name, "
                 "CASE WHEN data_type = 'ARRAY' THEN substr(udt_name, 2) || '[]' ELSE udt_name END "
                 "FROM information_schema.columns ORDER BY table_schema, table_name, ordinal_position", ())
    path = query("SELECT unnest(current_schemas(true))", ())
    views = query("SELECT n.nspname, c.relname, pg_get_viewdef(c.oid) FROM pg_class c "
                  "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('v', 'm') "
                  "AND n.nspname NOT IN ('pg_catalog', 'information_schema')", ())
    return Schema(_tables(rows), tuple(str(r[0]) for r in path),
                  {(str(s), str(t)): str(d or "") for s, t, d in views}, time.time(), _types(rows))


def read_mysql(query: Query) -> Schema:
    """The current database first, then every other schema the account can see."""
    rows = query("SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS "
                 "ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION", ())
    current = query("SELECT DATABASE()", ())
    views = query("SELECT TABLE_SCHEMA, TABLE_NAME, VIEW_DEFINITION FROM information_schema.VIEWS", ())
    path = (*tuple(str(r[0]) for r in current if r[0]), "information_schema", "mysql")
    return Schema(_tables(rows), path, {(str(s), str(t)): str(d or "") for s, t, d in views}, time.time(),
                  _types(rows))


def read_mssql(query: Query) -> Schema:
    """The default schema of the login, then dbo."""
    rows = query("SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, DATA_TYPE FROM INFORMATION_SCHEMA.COLUMNS "
                 "ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION", ())
    current = query("SELECT SCHEMA_NAME()", ())
    views = query("SELECT TABLE_SCHEMA, TABLE_NAME, VIEW_DEFINITION FROM INFORMATION_SCHEMA.VIEWS", ())
    path = tuple(dict.fromkeys([*(str(r[0]) for r in current if r[0]), "dbo", "sys", "INFORMATION_SCHEMA"]))
    return Schema(_tables(rows), path, {(str(s), str(t)): str(d or "") for s, t, d in views}, time.time(),
                  _types(rows))


def _tables(rows: list[tuple[Any, ...]]) -> dict[TableKey, tuple[str, ...]]:
    tables: dict[TableKey, list[str]] = {}
    for schema, table, column, *_ in rows:
        tables.setdefault((str(schema), str(table)), []).append(str(column))
    return {key: tuple(columns) for key, columns in tables.items()}


def _types(rows: list[tuple[Any, ...]]) -> dict[TableKey, tuple[str, ...]]:
    """The fourth column of the catalog rows, where the reader asked for it."""
    types: dict[TableKey, list[str]] = {}
    for row in rows:
        types.setdefault((str(row[0]), str(row[1])), []).append(str(row[3]) if len(row) > 3 else "")
    return {key: tuple(names) for key, names in types.items()}


class SchemaCache:
    """Schemas per target, read at most once per ``ttl`` seconds; thread-safe."""

    def __init__(self, ttl: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._schemas: dict[str, tuple[float, Schema]] = {}
        self._lock = threading.Lock()

    def get(self, target: str, read: Callable[[], Schema]) -> Schema:
        """The cached schema of ``target``, or a fresh one from ``read`` (its errors propagate)."""
        with self._lock:
            cached = self._schemas.get(target)
        if cached is not None and self._clock() - cached[0] <= self._ttl:
            return cached[1]
        schema = read()
        with self._lock:
            self._schemas[target] = (self._clock(), schema)
        return schema

    def invalidate(self, target: str) -> None:
        """Forget ``target``'s schema (a table or column the broker did not know of was named)."""
        with self._lock:
            self._schemas.pop(target, None)
