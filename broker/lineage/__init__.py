"""Column lineage: sensitive columns are known before a statement runs, and every output derived
from one is masked whole (``analyse``); a sensitive column that shapes the answer without being its
value is reported as a predicate (the ``sensitive-predicate`` risk). Unknown lineage fails closed.

The model, in order: the target's schema (``schema``, cached) and its sensitive columns
(``sensitivity``: catalog, discovery, name rules), then one statement's lineage (``analyse``), then
the execute path masks by it (``masking``). Nothing here runs a statement or sees a row value
except ``mask_outputs``.
"""

from broker.lineage.analyse import ALLOWED, UNRESOLVED, Lineage, Output, analyse
from broker.lineage.schema import Schema, SchemaCache, read_mssql, read_mysql, read_postgres
from broker.lineage.sensitivity import FREE_TEXT, Sensitivity, sensitive_columns

__all__ = ["ALLOWED", "FREE_TEXT", "UNRESOLVED", "Lineage", "Output", "Schema", "SchemaCache", "Sensitivity",
           "analyse", "read_mssql", "read_mysql", "read_postgres", "sensitive_columns"]
