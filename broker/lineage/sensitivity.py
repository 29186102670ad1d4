"""Which columns of a target are sensitive, decided before any statement runs.

Sources, in order of strength: the catalog's ``sensitive.columns`` and ``sensitive.patterns``
(the operator's word), then the built-in name rules and the target's ``masking`` columns, then
discovery's findings (``python -m broker data classify``: free text that held secrets or PII; it
only adds, never replaces a stronger kind). ``sensitive.not_sensitive`` (the operator again)
removes a column found by discovery or a name rule, never one the catalog declares. A view is
sensitive as a whole when its definition names a sensitive column, and the statistics relations
of the engines (``pg_stats``: most common values, histograms) always are.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase

from broker.catalog import Target
from broker.lineage.schema import Schema, TableKey
from broker.masking.names import classify_name

ColumnKey = tuple[str, str, str]  # (schema, table, column)

FREE_TEXT = "free_text"
"""A free-text column found holding secrets or PII: masked by content when selected as it is,
masked whole when transformed."""

ANY_COLUMN: ColumnKey = ("*", "*", "*")
"""A discovered finding for every column of the target: the stored classification was tampered
with (``broker/classification/store.py``), so every column is free text until the next run."""

STATISTICS = "statistics"
# Relations that hold samples of other tables' values (most common values, histograms, query texts).
OPAQUE_RELATIONS: frozenset[tuple[str, str]] = frozenset({
    ("pg_catalog", "pg_stats"), ("pg_catalog", "pg_stats_ext"), ("pg_catalog", "pg_stats_ext_exprs"),
    ("pg_catalog", "pg_statistic"), ("pg_catalog", "pg_statistic_ext_data"), ("pg_catalog", "pg_stat_activity"),
    ("pg_catalog", "pg_authid"), ("pg_catalog", "pg_shadow"), ("pg_catalog", "pg_user_mappings"),
    ("public", "pg_stat_statements"), ("information_schema", "column_statistics"), ("mysql", "column_stats"),
    ("mysql", "user"), ("mysql", "global_priv"), ("information_schema", "processlist"),
    ("performance_schema", "events_statements_current"), ("performance_schema", "events_statements_history"),
    ("sys", "dm_exec_sql_text"), ("sys", "stats"),
    ("mysql", "general_log"), ("mysql", "slow_log"), ("sys", "query_store_query_text"),
    ("sys", "dm_exec_input_buffer"), ("sys", "dm_exec_query_plan"), ("sys", "dm_exec_text_query_plan"),
})
_OPAQUE_SCHEMAS = frozenset({"performance_schema"})  # MySQL: other sessions' statement texts, with their literals
_OPAQUE_SYS = re.compile(r"^(?:x\$)?(?:statement|processlist|session|host_summary_by_statement|user_summary_by_"
                         r"statement)", re.IGNORECASE)  # MySQL's sys schema views over performance_schema


def opaque(key: tuple[str, str]) -> bool:
    """A relation that holds samples of other tables' values or other sessions' statement texts."""
    schema_name, table = key[0].lower(), key[1].lower()
    return ((schema_name, table) in OPAQUE_RELATIONS or schema_name in _OPAQUE_SCHEMAS
            or (schema_name == "sys" and bool(_OPAQUE_SYS.match(table))))


@dataclass(frozen=True)
class Sensitivity:
    """The sensitive columns of one target's schema, with their placeholder type."""

    columns: Mapping[ColumnKey, str]

    def kind(self, table: TableKey, column: str) -> str | None:
        return self.columns.get((table[0], table[1], column))

    @property
    def names(self) -> frozenset[str]:
        """Every sensitive column name, lower case (for statements whose lineage is unknown)."""
        return frozenset(c.lower() for _, _, c in self.columns)


def _spelled(key: ColumnKey) -> tuple[str, str]:
    """``schema.table.column`` and ``table.column``, lower case, for catalog entries."""
    schema, table, column = (part.lower() for part in key)
    return f"{schema}.{table}.{column}", f"{table}.{column}"


def _matches(entry: str, key: ColumnKey) -> bool:
    entry = entry.lower()
    return any(fnmatchcase(spelled, entry) for spelled in _spelled(key))


def sensitive_columns(schema: Schema, target: Target,
                      discovered: Iterable[tuple[ColumnKey, str]] = ()) -> Sensitivity:
    """Every sensitive column of ``schema`` for ``target`` (see the module docstring for the order)."""
    rules = _Rules(target)
    found = _found(discovered)
    out: dict[ColumnKey, str] = {}
    for (schema_name, table), names in schema.tables.items():
        hidden = opaque((schema_name, table))
        for column in names:
            key = (schema_name, table, column)
            kind, _ = rules.classify(key, _lookup(found, key), opaque=hidden)
            if kind is not None:
                out[key] = kind
    _views(schema, out)
    return Sensitivity(out)


def column_sensitivity(target: Target, key: ColumnKey, discovered: str | None) -> tuple[str | None, str]:
    """One column's sensitivity and which source decided it (``catalog``, ``not_sensitive``,
    ``discovery``, ``name rule``, ``masking`` or ``none``): what ``data show`` prints for review."""
    return _Rules(target).classify(key, discovered, opaque=opaque((key[0], key[1])))


def _found(discovered: Iterable[tuple[ColumnKey, str]]) -> dict[ColumnKey, str]:
    found: dict[ColumnKey, str] = {}
    for (schema_name, table, column), kind in discovered:
        found[(schema_name, table, column)] = kind
        found.setdefault((schema_name.lower(), table.lower(), column.lower()), kind)
    return found


def _lookup(found: Mapping[ColumnKey, str], key: ColumnKey) -> str | None:
    return (found.get(key) or found.get((key[0].lower(), key[1].lower(), key[2].lower()))
            or found.get(ANY_COLUMN))


class _Rules:
    """A target's sensitivity rules, compiled once per schema read."""

    def __init__(self, target: Target) -> None:
        self.spec = target.sensitive
        masking = target.masking
        self.keep = {c.lower() for c in masking.keep_columns}
        self.extra = {c.lower() for c in masking.columns}
        self.extra_patterns = [re.compile(p, re.IGNORECASE) for p in masking.column_patterns]
        self.patterns = [(re.compile(p.pattern, re.IGNORECASE), p.type) for p in self.spec.patterns]

    def classify(self, key: ColumnKey, discovered: str | None, *, opaque: bool) -> tuple[str | None, str]:
        """Declared first; then the statistics relations; then, unless ``not_sensitive`` lifts it,
        the name rules, the target's masking columns and discovery. Discovery only adds."""
        kind = _declared(key, self.spec.columns, self.patterns)
        if kind is not None:
            return kind, "catalog"
        if opaque:
            return STATISTICS, "statistics relation"
        if any(_matches(entry, key) for entry in self.spec.not_sensitive):
            return None, "not_sensitive"
        column = key[2]
        if self.spec.name_rules and column.lower() not in self.keep:
            named = classify_name(column)
            if named is not None:
                return named, "name rule"
        if column.lower() in self.extra or any(p.search(column) for p in self.extra_patterns):
            return "column", "masking"
        if discovered is not None:  # last: free text is weaker than a name rule's whole-value mask
            return discovered, "discovery"
        return None, "none"


def _declared(key: ColumnKey, columns: Iterable[object], patterns: list[tuple[re.Pattern[str], str]]) -> str | None:
    for entry in columns:
        if _matches(entry.column, key):  # type: ignore[attr-defined]
            return str(entry.type)  # type: ignore[attr-defined]
    dotted = ".".join(key)
    for pattern, kind in patterns:
        if pattern.search(dotted):
            return kind
    return None


def _views(schema: Schema, out: dict[ColumnKey, str]) -> None:
    """A view whose definition names a sensitive column is sensitive in every column (until a
    fixed point: views over such views too). Over-approximate by design: names, not lineage."""
    changed = True
    while changed:
        changed = False
        words = {c.lower(): kind for (_, _, c), kind in out.items() if kind != STATISTICS}
        if not words:
            return
        pattern = re.compile(r"\b(" + "|".join(map(re.escape, sorted(words, key=len, reverse=True))) + r")\b",
                             re.IGNORECASE)
        for view, definition in schema.views.items():
            match = pattern.search(definition)
            if match is None:
                continue
            for column in schema.tables.get(view, ()):
                key = (view[0], view[1], column)
                if key not in out:
                    out[key] = words[match.group(1).lower()]
                    changed = True
