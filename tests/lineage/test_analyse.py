"""Lineage unit cases: each statement, the masks of its outputs and whether it is a predicate."""

from __future__ import annotations

import pytest

from broker.lineage import Schema, Sensitivity, analyse

SCHEMA = Schema({("public", "customers"): ("id", "name", "email", "phone", "card_number", "notes", "created_at"),
                 ("public", "orders"): ("id", "customer_id", "amount", "status")}, ("pg_catalog", "public"))
SENSITIVE = Sensitivity({("public", "customers", "email"): "email", ("public", "customers", "phone"): "phone",
                         ("public", "customers", "card_number"): "card",
                         ("public", "customers", "notes"): "free_text"})

# (sql, masked output kinds by position (None: clean), predicate?)
CASES = [
    ("SELECT id, email FROM customers", [None, "email"], False),
    ("SELECT email AS x FROM customers", ["email"], False),
    ("SELECT reverse(email) FROM customers", ["email"], True),
    ("SELECT count(*), count(DISTINCT email), count(email) FROM customers", [None, None, None], False),
    ("SELECT id FROM customers WHERE email = 'a@b.c'", [None], False),
    ("SELECT id FROM customers WHERE email IN ('a@b.c', 'd@e.f')", [None], False),
    ("SELECT id FROM customers WHERE email LIKE 'a%'", [None], True),
    ("SELECT id FROM customers ORDER BY email", [None], True),
    ("SELECT email, count(*) FROM customers GROUP BY email", ["email", None], True),  # may sort by email
    ("SELECT substr(email, 1, 1), count(*) FROM customers GROUP BY 1", ["email", None], True),
    ("WITH c AS (SELECT email AS e FROM customers) SELECT e FROM c", ["email"], False),
    ("SELECT x.e FROM (SELECT email AS e FROM customers) x", ["email"], False),
    ("SELECT id FROM orders UNION ALL SELECT card_number FROM customers", ["card"], False),
    ("SELECT id FROM orders UNION SELECT card_number FROM customers", ["card"], True),  # sorted against ids
    ("SELECT (SELECT email FROM customers LIMIT 1)", ["email"], False),
    ("SELECT c FROM customers c", ["sensitive"], False),
    ("SELECT row_to_json(c) FROM customers c", ["sensitive"], True),
    ("SELECT s FROM customers, generate_series(1, length(email)) s", ["email"], True),
    ("SELECT substr(c.email, g, 1) FROM customers c, LATERAL generate_series(1, 40) g", ["email"], True),
    ("SELECT id, CASE WHEN email LIKE 'a%' THEN pg_sleep(1) END FROM customers", [None, "email"], True),
    ("SELECT notes FROM customers", [None], False),
    ("SELECT upper(notes) FROM customers", ["free_text"], True),
    ("SELECT o.id, o.amount FROM orders o JOIN customers c ON c.id = o.customer_id", [None, None], False),
    ("SELECT o.id FROM orders o JOIN customers c ON c.email = o.status", [None], True),
    ("SELECT row_number() OVER (ORDER BY email) FROM customers", ["email"], True),
    ("SELECT count(*) OVER (PARTITION BY email) FROM customers", [None], True),  # rows come out in email order
    ("SELECT id, count(*) OVER (PARTITION BY x) FROM (SELECT id, email x FROM customers "
     "UNION ALL SELECT -1, 'm') s", [None, None], True),
    # Grouped, deduplicated or partitioned by a sensitive column: the engine may sort by it (a guess unioned
    # in beside the stored value is then ordered against it).
    ("SELECT x, count(*) FROM (SELECT email x FROM customers UNION ALL SELECT 'm') s GROUP BY x",
     ["email", None], True),
    ("SELECT x FROM (SELECT email x FROM customers UNION ALL SELECT name FROM customers) s GROUP BY x",
     ["email"], True),
    ("SELECT DISTINCT x, t FROM (SELECT email x, 1 t FROM customers UNION ALL SELECT 'm', 2) s",
     ["email", None], True),
    ("SELECT email, 1 FROM customers UNION SELECT 'm', 2", ["email", None], True),
    ("SELECT email FROM customers UNION SELECT card_number FROM customers", ["sensitive"], True),
    ("SELECT email FROM customers UNION ALL SELECT card_number FROM customers", ["sensitive"], False),
    ("SELECT DISTINCT email FROM customers", ["email"], True),
    ("SELECT min(id) FROM customers GROUP BY email, to_tsvector(name)", [None], True),  # sorted: rows in email order
    ("SELECT count(*) FROM (SELECT DISTINCT status FROM orders) s", [None], False),
    ("SELECT status, count(*) FROM orders GROUP BY status", [None, None], False),
    ("SELECT id, email IS NULL FROM customers", [None, None], False),
    ("SELECT status, sum(amount) FROM orders GROUP BY status ORDER BY 2 DESC", [None, None], False),
    ("EXPLAIN ANALYZE SELECT id FROM customers WHERE email LIKE 'a%'", [], True),
    ("SELECT i, e FROM ROWS FROM (unnest(ARRAY[1]), unnest(ARRAY(SELECT email FROM customers))) AS r(i, e)",
     ["email", "email"], False),  # a function's columns all carry every argument's taint
    ("SELECT i FROM ROWS FROM (generate_series(1, 3)) AS r(i)", [None], False),
]


@pytest.mark.parametrize(("sql", "kinds", "predicate"), CASES)
def test_lineage(sql: str, kinds: list[str | None], predicate: bool) -> None:
    lineage = analyse(sql, "postgres", SCHEMA, SENSITIVE)
    assert lineage.outputs is not None, lineage.unresolved
    assert [o.kind for o in lineage.outputs] == kinds
    assert bool(lineage.predicates) is predicate, lineage.predicates


@pytest.mark.parametrize("sql", ["SELECT xmin, email FROM customers", "SELECT * FROM nowhere WHERE email = 1"])
def test_unresolved_fails_closed(sql: str) -> None:
    lineage = analyse(sql, "postgres", SCHEMA, SENSITIVE)
    assert lineage.outputs is None and lineage.touches and lineage.predicates


def test_relations_holding_other_sessions_statements_are_sensitive_whole() -> None:
    """MySQL's performance_schema and sys views, its general and slow logs, SQL Server's Query Store
    keep other sessions' statement texts with their literals (an INSERT's email): masked whole."""
    from broker.catalog import Target
    from broker.lineage import sensitive_columns

    schema = Schema({("performance_schema", "threads"): ("PROCESSLIST_INFO",),
                     ("performance_schema", "events_statements_history_long"): ("SQL_TEXT",),
                     ("mysql", "general_log"): ("argument",), ("sys", "x$statement_analysis"): ("query",),
                     ("sys", "query_store_query_text"): ("query_sql_text",), ("sys", "tables"): ("name",),
                     ("demo", "people"): ("id",)}, ("demo",))
    target = Target.model_validate({"name": "db", "engine": "mysql",
                                    "credential": {"source": "key-vault", "secret": "s"}})
    found = sensitive_columns(schema, target)
    assert {k[:2] for k in found.columns} == {("performance_schema", "threads"), ("mysql", "general_log"),
                                              ("performance_schema", "events_statements_history_long"),
                                              ("sys", "x$statement_analysis"), ("sys", "query_store_query_text")}
    lineage = analyse("SELECT PROCESSLIST_INFO FROM performance_schema.threads", "mysql", schema, found)
    assert [o.kind for o in lineage.outputs or ()] == ["statistics"]
