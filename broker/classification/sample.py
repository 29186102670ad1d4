"""What one classification run reads and what it finds: a bounded sample of each base table,
scanned value by value with the masking engine's own detectors (the same ones that mask results).

The sample is the first ``rows`` rows the server returns (``LIMIT``/``TOP``), read by the engine in
a read-only transaction under a statement timeout, with the target's credential (the broker's, never
the agent's path). Values are only counted here: nothing keeps or logs one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

from broker.lineage.schema import Schema, TableKey
from broker.masking import Masker, MaskingRules

SYSTEM_SCHEMAS = frozenset({"pg_catalog", "information_schema", "pg_toast", "mysql", "performance_schema", "sys",
                            "INFORMATION_SCHEMA"})
"""Catalogs, never sampled: their statistics relations are sensitive by rule (``broker/lineage``)."""

_MASKED_WHOLE = frozenset({"oversized", "error"})
"""Kinds the engine gives a value it could not scan: counted as findings (fail closed)."""


@dataclass(frozen=True)
class ColumnFinding:
    """One column's evidence: how many sampled values were not null, how many held something a
    detector found (``hits``), and the hits by type (a value can count for several types)."""

    schema: str
    table: str
    column: str
    sampled: int = 0
    hits: int = 0
    types: dict[str, int] = field(default_factory=dict)
    name_rule: str | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.schema, self.table, self.column)

    @property
    def sensitive(self) -> bool:
        """Secrets or personal data in the sample: the column is free text to mask whole when transformed."""
        return self.hits > 0

    def to_dict(self) -> dict[str, Any]:
        return {"schema": self.schema, "table": self.table, "column": self.column, "sampled": self.sampled,
                "hits": self.hits, "types": dict(sorted(self.types.items())), "name_rule": self.name_rule}


def sampled_tables(schema: Schema) -> list[TableKey]:
    """Every base table outside the system catalogs (views are sensitive through their definitions)."""
    return [key for key in schema.tables if key[0] not in SYSTEM_SCHEMAS and key[0].lower() not in SYSTEM_SCHEMAS
            and key not in schema.views]


def sample_sql(dialect: str, table: TableKey, columns: Sequence[str], rows: int) -> str:
    """``SELECT "c1", "c2" FROM "s"."t" LIMIT n`` in the target's dialect (``TOP n`` on SQL Server),
    every identifier quoted: names come from the target's catalog and may hold anything."""
    select = exp.select(*(exp.column(c, quoted=True) for c in columns)).from_(
        exp.table_(table[1], db=table[0], quoted=True)).limit(rows)
    return select.sql(dialect=dialect)


def scan_columns(masker: Masker, rules: MaskingRules, table: TableKey, columns: Sequence[str],
                 rows: Iterable[Sequence[Any]], name_rule: dict[str, str | None]) -> list[ColumnFinding]:
    """Each column's evidence over the sampled rows (detectors only: name rules are recorded apart)."""
    sampled = [0] * len(columns)
    hits = [0] * len(columns)
    types: list[Counter[str]] = [Counter() for _ in columns]
    for row in rows:
        for j, value in enumerate(row[:len(columns)]):
            if value is None:
                continue
            sampled[j] += 1
            found: Counter[str] = Counter()
            masker.mask_document([_scannable(value)], found, rules)
            if found:
                hits[j] += 1
                for kind in found:
                    types[j]["unscanned" if kind in _MASKED_WHOLE else kind] += 1
    return [ColumnFinding(table[0], table[1], c, sampled[j], hits[j], dict(types[j]), name_rule.get(c))
            for j, c in enumerate(columns)]


def _scannable(value: Any) -> Any:
    """Bytes are scanned as text (a secret in a ``bytea`` is still a secret); the rest as the masking
    engine sees it in a result."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", errors="replace")
    return value
