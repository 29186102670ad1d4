"""A statement qualified against the target's schema with sqlglot (every column bound to its table,
stars expanded), for ``analyse``; the sqlglot schema mapping is built once per schema read."""

from __future__ import annotations

from sqlglot import exp
from sqlglot.optimizer.qualify import qualify
from sqlglot.schema import MappingSchema

from broker.lineage.schema import Schema


def qualified_tree(tree: exp.Expression, schema: Schema, dialect: str) -> exp.Expression:
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    for function in tree.find_all(exp.Lateral, exp.Unnest):  # LATERAL f(...) g, unnest(...) u: one column, g
        alias = function.args.get("alias")
        if alias is not None and not alias.columns and not isinstance(function.this, exp.Query) and alias.name:
            alias.set("columns", [exp.to_identifier(alias.name)])
    for table in tree.find_all(exp.Table):
        if isinstance(table.this, exp.Identifier) and not table.db and table.name.lower() not in ctes:
            key = schema.find("", table.name)
            if key is not None:
                table.set("db", exp.to_identifier(key[0]))
    return qualify(tree, schema=_mapping(schema, dialect), dialect=dialect, expand_stars=True,
                   validate_qualify_columns=True, quote_identifiers=False,
                   qualify_columns=True, allow_partial_qualification=False)


_MAPPINGS: dict[tuple[int, str], MappingSchema] = {}


def _mapping(schema: Schema, dialect: str) -> MappingSchema:
    key = (id(schema), dialect)
    mapping = _MAPPINGS.get(key)
    if mapping is None:
        nested: dict[str, dict[str, dict[str, str]]] = {}
        for (db, table), columns in schema.tables.items():
            nested.setdefault(db, {})[table] = dict.fromkeys(columns, "text")
        mapping = MappingSchema(nested, dialect=dialect, normalize=True)
        if len(_MAPPINGS) > 64:
            _MAPPINGS.clear()
        _MAPPINGS[key] = mapping
    return mapping
