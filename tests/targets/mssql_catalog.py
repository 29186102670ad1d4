"""A stand-in for SQL Server's catalog views, for the T-SQL resolver (no SQL Server runs here).

It answers exactly the resolver's three queries (anything else is an error, as unknown SQL would
be) the way SQL Server does, and never more permissively: metadata visibility (an object the role
holds no permission on is not in ``sys.objects``), ``sys.sql_modules.definition`` NULL without
``VIEW DEFINITION`` and for ``WITH ENCRYPTION`` modules, security predicates hidden without it,
``sys.objects.type`` as ``char(2)`` (``'V '``), names in the case they were created with. It
is stricter than SQL Server in one place: a synonym's ``base_object_name`` is NULL without
``VIEW DEFINITION`` (the resolver then answers ``unknown``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyodbc

from broker.guard.sql_tsql_resolve import CONTEXT_SQL, EXPRESSIONS_SQL, OBJECTS_SQL


@dataclass
class Obj:
    schema: str
    name: str
    type: str  # sys.objects.type without padding: V, U, FN, IF, TF, FS, FT, SN, ET; types: UT (CLR), AT (alias)
    definition: str | None = None
    base: str | None = None  # synonyms
    encrypted: bool = False
    computed: list[str] = field(default_factory=list)  # computed-column expressions (tables)
    predicates: list[str] = field(default_factory=list)  # enabled security predicates (tables)


@dataclass
class Role:
    """What the broker's database user holds (``db_datareader`` by default)."""

    datareader: bool = True  # SELECT on the database: tables, views, TVFs, synonyms
    execute: bool = False  # EXECUTE on the database (scalar functions)
    deny_execute: bool = True  # the documented role: DENY EXECUTE
    view_definition: bool = True
    default_schema: str = "dbo"


class SqlServerCatalog:
    def __init__(self, database: str, objects: list[Obj], role: Role | None = None) -> None:
        self.database = database
        self.objects = objects
        self.role = role or Role()
        self.queries: list[str] = []

    def _visible(self, obj: Obj) -> bool:
        role = self.role
        if role.view_definition:
            return True
        if obj.type in ("UT", "AT"):
            return False  # stricter than SQL Server where unsure: a type needs VIEW DEFINITION here
        if obj.type in ("U", "V", "IF", "TF", "FT", "SN", "ET") and role.datareader:
            return True
        return obj.type in ("FN", "FS") and role.execute and not role.deny_execute

    def query(self, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
        self.queries.append(sql)
        if sql == CONTEXT_SQL:
            return [(self.database, self.role.default_schema, 1 if self.role.view_definition else 0)]
        if sql == OBJECTS_SQL:
            rows = []
            for obj in self.objects:
                if not self._visible(obj):
                    continue
                definition = obj.definition if obj.type in ("V", "FN", "IF", "TF") else None
                if not self.role.view_definition or obj.encrypted:
                    definition = None
                base = obj.base if obj.type == "SN" and self.role.view_definition else None
                rows.append((obj.schema, obj.name, obj.type.ljust(2), definition, base))
            return sorted(rows, key=lambda row: row[2] in ("UT", "AT"))  # UNION ALL: objects, then types
        if sql == EXPRESSIONS_SQL:
            rows = []
            for obj in self.objects:
                if not self._visible(obj):
                    continue
                for expression in obj.computed:
                    rows.append((obj.schema, obj.name, expression if self.role.view_definition else None))
                if self.role.view_definition:  # hidden altogether without it
                    rows += [(obj.schema, obj.name, predicate) for predicate in obj.predicates]
            return rows
        raise pyodbc.ProgrammingError("42000", f"[42000] [Microsoft][ODBC Driver 18 for SQL Server][SQL Server]"
                                               f"Incorrect syntax near '{sql[:20]}'. (102) (SQLExecDirectW)")


class CatalogConnection:
    """A pyodbc-shaped connection whose cursor answers from a ``SqlServerCatalog``."""

    def __init__(self, catalog: SqlServerCatalog) -> None:
        self.catalog = catalog
        self.timeout = 0
        self.closed = False
        self._rows: list[tuple[Any, ...]] = []

    def add_output_converter(self, sql_type: int, func: Any) -> None:
        pass

    def cursor(self) -> CatalogConnection:
        return self

    def execute(self, sql: str, *params: Any) -> CatalogConnection:
        self._rows = self.catalog.query(sql, params)
        return self

    def fetchall(self) -> list[tuple[Any, ...]]:
        return list(self._rows)

    def close(self) -> None:
        self.closed = True
