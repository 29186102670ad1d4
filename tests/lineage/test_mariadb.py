"""Lineage on the real MariaDB: the schema read from information_schema, derived outputs masked whole,
oracles reported, compared with the raw answer read directly from the server."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from broker.catalog import Target
from broker.guard.sql import classify_sql
from broker.lineage.guard import LineageGuard, mask_outputs
from broker.masking import Masker
from broker.targets import Command, ExecutionLimits, create_engine

MASKER = Masker(b"k" * 32)
EMAILS = ["ada@example.com", "grace@example.org", "alan@example.net"]


@pytest.fixture(scope="module")
def people(maria):
    with maria.server.admin() as admin, admin.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS demo.people (id INT PRIMARY KEY, name VARCHAR(40), "
                    "email VARCHAR(80), notes TEXT)")
        cur.execute("DELETE FROM demo.people")
        for i, email in enumerate(EMAILS, start=1):
            cur.execute("INSERT INTO demo.people VALUES (%s, %s, %s, %s)", (i, f"p{i}", email, f"note {i}"))
        cur.execute("CREATE OR REPLACE VIEW demo.contacts AS SELECT id, email AS contact FROM demo.people")
        cur.execute("GRANT SELECT ON demo.people TO 'reader'@'127.0.0.1'")
        cur.execute("GRANT SELECT, SHOW VIEW ON demo.contacts TO 'reader'@'127.0.0.1'")
    engine = create_engine("mysql")
    target = Target.model_validate({**maria.target.model_dump(), "sensitive": {
        "columns": [{"column": "people.notes", "type": "free_text"}]}})
    yield engine, target, maria
    engine.close()


@pytest.mark.parametrize(("sql", "predicate"), [
    ("SELECT email AS x FROM people ORDER BY id", False),
    ("SELECT contact FROM contacts", False),
    ("SELECT contact FROM contacts ORDER BY id", True),  # a view over a sensitive column: every column is
    ("SELECT REVERSE(email) FROM people ORDER BY id", True),
    ("SELECT HEX(email) FROM people ORDER BY id", True),
    ("SELECT CONCAT(email, '') FROM people ORDER BY id", True),
    ("SELECT GROUP_CONCAT(email) FROM people", True),
    ("SELECT JSON_ARRAYAGG(email) FROM people", True),
    ("SELECT id FROM people WHERE email LIKE 'a%'", True),
    ("SELECT id, IF(ASCII(email) > 100, SLEEP(0), 0) FROM people", True),
    ("WITH c AS (SELECT email AS e FROM people) SELECT e FROM c ORDER BY e", True),
    ("SELECT x.e FROM (SELECT email AS e, id FROM people) x ORDER BY x.id", False),
])
def test_mariadb_outputs_masked_and_oracles_found(people, sql: str, predicate: bool) -> None:
    engine, target, maria = people
    guard = LineageGuard()
    classification = guard.refine(target, "mysql", sql, classify_sql(sql, "mysql"),
                                  lambda: engine.read_schema(target, maria.reader))
    assert bool(classification.details["lineage"].get("predicates")) is predicate, classification.details
    if classification.risk.value in ("read", "sensitive-predicate"):  # SLEEP is refused by the guard anyway
        assert (classification.risk.value == "sensitive-predicate") is predicate
    result = engine.execute(target, Command("sql", sql=sql), maria.reader, ExecutionLimits(), read_only=True)
    raw = [list(r) for r in result.rows]
    mask_outputs(classification.details["lineage"], len(result.columns), result.rows, MASKER, Counter())
    text = json.dumps(result.rows)
    assert not any(e in text or e[::-1] in text or e.encode().hex().upper() in text for e in EMAILS)
    for got, want in zip(result.rows, raw, strict=True):
        assert all(g != w for g, w in zip(got, want, strict=True) if isinstance(w, str) and "@" in w)


def test_mariadb_ordinary_reads_pass_clean(people) -> None:
    engine, target, maria = people
    sql = "SELECT count(*), count(DISTINCT email), max(id) FROM people WHERE email = 'ada@example.com'"
    classification = LineageGuard().refine(target, "mysql", sql, classify_sql(sql, "mysql"),
                                           lambda: engine.read_schema(target, maria.reader))
    assert classification.risk.value == "read"
    assert [o["mask"] for o in classification.details["lineage"]["outputs"]] == [None, None, None]


def test_tsql_dialect_lineage() -> None:
    from broker.lineage import Schema, Sensitivity, analyse

    schema = Schema({("dbo", "people"): ("id", "email")}, ("dbo",))
    sensitive = Sensitivity({("dbo", "people", "email"): "email"})
    top = analyse("SELECT TOP 5 email AS x FROM people", "tsql", schema, sensitive)
    assert [o.kind for o in top.outputs or ()] == ["email"] and not top.predicates
    oracle = analyse("SELECT id FROM dbo.people WHERE SUBSTRING(email, 1, 1) = 'a'", "tsql", schema, sensitive)
    assert oracle.predicates
    derived = analyse("SELECT REVERSE(email) + '' FROM people", "tsql", schema, sensitive)
    assert [o.kind for o in derived.outputs or ()] == ["email"] and derived.predicates
