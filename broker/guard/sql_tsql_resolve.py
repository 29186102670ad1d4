"""What a T-SQL read will run through the views, functions and synonyms it names (Azure SQL, SQL Server).

The static classifier judges the text. SQL Server runs more: a view runs its own SELECT, which may
call a user-defined function, which may call an extended procedure (``EXEC master..xp_cmdshell``
is allowed inside a function), a CLR function, ``OPENROWSET``/``OPENQUERY``, or take lock hints; a
synonym stands for any of these, or for an object on a linked server; a table's computed columns
and row-level security predicates call functions whenever it is read. A rolled-back transaction
undoes none of that. So a statement the classifier calls ``read`` is resolved here against the
target's catalog (``sys.objects`` with ``sys.sql_modules`` definitions, ``sys.synonyms``,
``sys.computed_columns``, ``sys.security_predicates``), recursively, and stays ``read`` only when
everything it reaches is one by the same static rules (``sql_tsql_modules``).

Unknown is never a read: an object the broker's role cannot see, a definition it may not read
(``sys.sql_modules.definition`` is NULL without ``VIEW DEFINITION``, and for ``WITH ENCRYPTION``
modules), any table when the role lacks ``VIEW DEFINITION`` (SQL Server then hides security
predicates altogether), an object in another database or on a linked server, CLR code (never
read: it is .NET), or nesting deeper than SQL Server's own limit. Names match as SQL Server's default collation does,
without regard to case, and an unqualified name is looked up in every schema it could resolve to
(the referring module's, the login's default schema, ``dbo``): over-approximation, never a miss.
The catalog is read once per target per ``ttl`` seconds (and again after a write through the
engine, which may have changed a definition).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot.errors import SqlglotError

from broker.guard import Risk
from broker.guard._target_cache import TargetCache
from broker.guard.sql_rules import SqlFinding
from broker.guard.sql_tsql_modules import Analysis, Reference, analyse_expression, analyse_module, references

Query = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]
"""(SQL with ? placeholders, parameters) -> rows; run by the engine on the target."""

Name = tuple[str, str]  # (schema, name) as ``key`` folds them


def key(name: str) -> str:
    """A name folded as SQL Server's default collation compares it, or more loosely: without regard
    to case or width (``_CI_AS`` is width-insensitive), nor trailing spaces."""
    return unicodedata.normalize("NFKC", name).casefold().rstrip(" ")


OBJECTS_SQL = (
    "SELECT s.name AS schema_name, o.name AS object_name, o.type AS object_type, "
    "CASE WHEN o.type IN ('V', 'FN', 'IF', 'TF') THEN m.definition END AS definition, "
    "sn.base_object_name AS base_object_name "
    "FROM sys.objects AS o JOIN sys.schemas AS s ON s.schema_id = o.schema_id "
    "LEFT JOIN sys.sql_modules AS m ON m.object_id = o.object_id "
    "LEFT JOIN sys.synonyms AS sn ON sn.object_id = o.object_id "
    "WHERE o.parent_object_id = 0 "
    "UNION ALL "
    "SELECT s.name, t.name, CASE WHEN t.is_assembly_type = 1 THEN 'UT' ELSE 'AT' END, NULL, NULL "
    "FROM sys.types AS t JOIN sys.schemas AS s ON s.schema_id = t.schema_id "
    "WHERE t.is_user_defined = 1 AND t.is_table_type = 0")
"""Every top-level object the role can see; a definition only for views and T-SQL functions (CLR
functions and extended procedures have none to read), a base name only for synonyms. Then the
user-defined types (not objects): ``UT`` a CLR type (its conversions and methods are .NET code),
``AT`` an alias of a system type."""
EXPRESSIONS_SQL = (
    "SELECT s.name AS schema_name, o.name AS object_name, cc.definition AS definition "
    "FROM sys.computed_columns AS cc JOIN sys.objects AS o ON o.object_id = cc.object_id "
    "JOIN sys.schemas AS s ON s.schema_id = o.schema_id "
    "UNION ALL "
    "SELECT s.name, o.name, sp.predicate_definition "
    "FROM sys.security_predicates AS sp JOIN sys.security_policies AS p ON p.object_id = sp.object_id "
    "JOIN sys.objects AS o ON o.object_id = sp.target_object_id JOIN sys.schemas AS s ON s.schema_id = o.schema_id "
    "WHERE p.is_enabled = 1")
"""What reading a table evaluates besides its stored columns: computed columns, RLS predicates."""
CONTEXT_SQL = ("SELECT DB_NAME() AS database_name, SCHEMA_NAME() AS default_schema, "
               "HAS_PERMS_BY_NAME(NULL, 'DATABASE', 'VIEW DEFINITION') AS view_definition")
"""Without ``VIEW DEFINITION`` SQL Server shows no definitions and hides security predicates."""
MAX_DEPTH = 32  # SQL Server's own nesting limit for views and functions

_SYSTEM_SCHEMAS = frozenset({"sys", "information_schema"})
_KINDS = {"V": "view", "FN": "function", "IF": "function", "TF": "function", "SN": "synonym", "U": "table",
          "FS": "CLR function", "FT": "CLR function", "AF": "CLR aggregate", "PC": "CLR procedure",
          "X": "extended procedure", "P": "procedure", "ET": "external table", "UT": "CLR type",
          "AT": "alias type"}
_CLR = {"FS", "FT", "AF", "PC", "X", "UT"}
_PROCEDURES = {"P", "RF"}
_TABLES = {"U", "S", "IT", "TT", "SQ"}


@dataclass(frozen=True)
class CatalogObject:
    schema: str
    name: str
    kind: str  # sys.objects.type, trimmed (char(2): 'V ', 'U ')
    definition: str | None = None
    base: str | None = None  # a synonym's base_object_name

    @property
    def label(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass
class Catalog:
    database: str  # lower-cased only: a name that differs otherwise is another database (unknown)
    default_schema: str
    view_definition: bool = False
    objects: dict[Name, list[CatalogObject]] = field(default_factory=dict)
    expressions: dict[Name, list[str | None]] = field(default_factory=dict)

    def lookup(self, schemas: Iterable[str], name: str) -> list[CatalogObject]:
        found: list[CatalogObject] = []
        for schema in dict.fromkeys(schemas):
            found += self.objects.get((schema, name), [])
        return found


def read_catalog(query: Query) -> Catalog:
    """The catalog as the broker's role sees it (three queries; ``query`` runs them)."""
    context = query(CONTEXT_SQL, ())
    database, default_schema, view_definition = (context[0] if context else ("", "dbo", 0))
    catalog = Catalog(str(database or "").lower(), key(str(default_schema or "dbo")), view_definition == 1)
    for schema, name, kind, definition, base in query(OBJECTS_SQL, ()):
        obj = CatalogObject(str(schema), str(name), str(kind).strip().upper(),
                            str(definition) if definition is not None else None,
                            str(base) if base is not None else None)
        catalog.objects.setdefault((key(obj.schema), key(obj.name)), []).append(obj)
    for schema, name, definition in query(EXPRESSIONS_SQL, ()):
        catalog.expressions.setdefault((key(str(schema)), key(str(name))), []).append(
            str(definition) if definition is not None else None)
    return catalog


def split_name(text: str) -> tuple[str, ...]:
    """A multi-part name as ``sys.synonyms.base_object_name`` stores it (``[db].[dbo].[t]``)."""
    parts: list[str] = []
    current, index, quoted = "", 0, False
    while index < len(text):
        char = text[index]
        if char in "[\"" and not current:
            close = "]" if char == "[" else '"'
            index += 1
            while index < len(text):
                if text[index] == close and text[index + 1:index + 2] == close:
                    current, index = current + close, index + 2
                elif text[index] == close:
                    index += 1
                    break
                else:
                    current, index = current + text[index], index + 1
            quoted = True
            continue
        if char == ".":
            parts.append(current)
            current, quoted = "", False
        elif not quoted:
            current += char
        index += 1
    parts.append(current.strip())
    return tuple(p.strip() for p in parts)


class ModuleResolver:
    """Per-target cache of the catalog, and the findings a statement's objects add."""

    def __init__(self, *, ttl: float = 60.0) -> None:
        self._catalogs: TargetCache[Catalog] = TargetCache(ttl)

    def findings(self, target: str, sql: str, query: Query) -> list[SqlFinding]:
        """The reasons what a read names makes it more than a read (empty: it stays one)."""
        try:
            tree = sqlglot.parse_one(sql, dialect="tsql")
        except (SqlglotError, RecursionError):  # the classifier parsed it; a parse that disagrees: not a read
            return [SqlFinding(Risk.UNKNOWN, "the statement's objects could not be resolved")]
        named = references(tree)
        if not named:  # nothing to look up (``SELECT 1``): no catalog, no connection
            return []
        return _Walk(self._catalog(target, query)).run(named)

    def _catalog(self, target: str, query: Query) -> Catalog:
        return self._catalogs.get(target, lambda: read_catalog(query))

    def forget(self, target: str) -> None:
        """Drop a target's cached catalog (e.g. after an approved DDL change)."""
        self._catalogs.forget(target)


class _Walk:
    """One statement's resolution: a work list of references, each object judged once."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.out: list[SqlFinding] = []
        self.seen: set[tuple[str, str, str]] = set()

    def run(self, refs: Iterable[Reference]) -> list[SqlFinding]:
        pending: list[tuple[Reference, str, int, str]] = [(ref, "", 0, "") for ref in refs]
        while pending:
            ref, context, depth, via = pending.pop()
            for obj in self._resolve(ref, context, via):
                identity = (key(obj.schema), key(obj.name), obj.kind)
                if identity in self.seen:
                    continue
                self.seen.add(identity)
                if depth >= MAX_DEPTH:
                    self._add(Risk.UNKNOWN, f"{obj.label} nests views or functions more than {MAX_DEPTH} deep", via)
                    continue
                step = f"{via}{_KINDS.get(obj.kind, 'object')} {obj.label}: "
                for inner in self._judge(obj, step):
                    pending.append((inner, key(obj.schema), depth + 1, step))
        return self.out

    def _add(self, risk: Risk, reason: str, via: str = "") -> None:
        self.out.append(SqlFinding(risk, f"{via}{reason}"))

    def _resolve(self, ref: Reference, context: str, via: str) -> list[CatalogObject]:
        parts = [key(p) for p in ref.parts]
        written = ".".join(ref.parts)
        if ref.cast:
            types = [o for o in self._lookup_name(parts, context) if o.kind in ("UT", "AT")]
            if not types:
                self._add(Risk.UNKNOWN, f"a cast to {written}, which is not a type the broker's role can see in "
                                        "the target's catalog", via)
            return types
        if len(parts) >= 4:
            self._add(Risk.EXEC, f"{written} names an object on a linked server, outside the broker's view", via)
            return []
        # Deciding to skip compares strictly (ASCII case only); finding what to judge, loosely (``key``).
        system = len(parts) >= 2 and ref.parts[-2].isascii() and ref.parts[-2].lower() in _SYSTEM_SCHEMAS
        if len(parts) == 3 and ref.parts[0] and ref.parts[0].lower() != self.catalog.database:
            if ref.maybe and self.catalog.lookup([parts[0]], parts[1]):  # schema.table.column
                return self.catalog.lookup([parts[0]], parts[1])
            if not system:
                self._add(Risk.UNKNOWN, f"{written} is in database {ref.parts[0]}, whose catalog the broker "
                                        "does not read", via)
            return []
        if system:
            return []  # system views and functions: judged by the static rules, never user code
        found = self._lookup_name(parts, context)
        if found or ref.maybe:
            return found
        if ref.call:
            if ref.otherwise is not None:
                self._add(Risk.UNKNOWN, f"{written}() is neither a built-in the broker knows nor a function "
                                        "the broker's role can see in the target's catalog", via)
            return []
        self._add(Risk.UNKNOWN, f"{written} is not a table, view or synonym the broker's role can see in the "
                                "target's catalog", via)
        return []

    def _lookup_name(self, parts: list[str], context: str) -> list[CatalogObject]:
        """The objects a (folded) name can mean: qualified, or in every schema it may resolve to."""
        if len(parts) >= 2 and parts[-2]:
            return self.catalog.lookup([parts[-2]], parts[-1])
        return self.catalog.lookup([context or self.catalog.default_schema, self.catalog.default_schema, "dbo"],
                                   parts[-1])

    def _judge(self, obj: CatalogObject, step: str) -> list[Reference]:
        """The findings of one object (added to ``out``) and the references to resolve after it."""
        kind = obj.kind
        if kind in _TABLES or kind == "ET":
            if kind == "ET":
                self._add(Risk.EXEC, f"{step}an external table reads another data source, outside the broker's view")
                return []
            return self._expressions(obj, step)
        if kind == "AT":
            return []  # an alias of a system type: nothing runs
        if kind in _CLR:
            self._add(Risk.EXEC, f"{step}CLR or extended code runs outside the SQL the broker can inspect")
            return []
        if kind in _PROCEDURES:
            self._add(Risk.EXEC, f"{step}a stored procedure the broker cannot inspect")
            return []
        if kind == "SN":
            return self._synonym(obj, step)
        if kind in ("V", "FN", "IF", "TF"):
            if obj.definition is None:
                self._add(Risk.UNKNOWN, f"{step}its definition is not visible to the broker's role (it needs "
                                        "VIEW DEFINITION; WITH ENCRYPTION modules are never readable), so what it "
                                        "runs is unknown")
                return []
            return self._analysis(analyse_module(kind, obj.definition), step)
        self._add(Risk.UNKNOWN, f"{step}an object of type {kind} the broker does not resolve")
        return []

    def _analysis(self, analysis: Analysis, step: str) -> list[Reference]:
        for finding in analysis.findings:
            self.out.append(SqlFinding(finding.risk, f"{step}{finding.reason}"))
        return list(analysis.references)

    def _expressions(self, obj: CatalogObject, step: str) -> list[Reference]:
        if not self.catalog.view_definition:
            self._add(Risk.UNKNOWN, f"{step}the broker's role lacks VIEW DEFINITION on the database, so the "
                                    "security predicates and computed columns that reading it runs are not visible")
            return []
        refs: list[Reference] = []
        for expression in self.catalog.expressions.get((key(obj.schema), key(obj.name)), []):
            if expression is None:
                self._add(Risk.UNKNOWN, f"{step}a computed column or security predicate is not visible to the "
                                        "broker's role (it needs VIEW DEFINITION)")
                continue
            refs += self._analysis(analyse_expression(expression), step)
        return refs

    def _synonym(self, obj: CatalogObject, step: str) -> list[Reference]:
        if not obj.base:
            self._add(Risk.UNKNOWN, f"{step}its base object is not visible to the broker's role "
                                    "(it needs VIEW DEFINITION)")
            return []
        return [Reference(split_name(obj.base))]
