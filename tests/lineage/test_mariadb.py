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
    # MariaDB's own spellings (issue 13's audit, a13).
    ("SELECT CONCAT_WS('-', email, name) FROM people ORDER BY id", True),
    ("SELECT GROUP_CONCAT(email ORDER BY id SEPARATOR ';') FROM people", True),
    ("SELECT HEX(REVERSE(email)) FROM people ORDER BY id", True),
    ("SELECT TO_BASE64(email) FROM people ORDER BY id", True),
    ("SELECT JSON_OBJECT('e', email) FROM people ORDER BY id", True),
    ("SELECT ELT(1, email, name) FROM people ORDER BY id", True),
    ("SELECT FIELD(email, 'ada@example.com', 'x') FROM people ORDER BY id", True),
    ("SELECT SUBSTRING_INDEX(email, '@', 1) FROM people ORDER BY id", True),
    ("SELECT INSERT(email, 1, 1, 'X') FROM people ORDER BY id", True),
    ("SELECT CAST(email AS BINARY) FROM people ORDER BY id", True),
    ("SELECT UNHEX(HEX(email)) FROM people ORDER BY id", True),
    ("SELECT id FROM people WHERE email RLIKE '^a'", True),
    ("SELECT id FROM people WHERE email = 0", True),  # a number against text: its numeric prefix
    ("SELECT email FROM people GROUP BY email", True),
    ("SELECT DISTINCT email FROM people", True),
    ("SELECT id, email FROM people UNION SELECT -1, 'b'", True),
    ("SELECT id, COUNT(*) OVER (PARTITION BY email) FROM people", True),
    ("SELECT `email` FROM `people` ORDER BY `id`", False),
    ("SELECT p.* FROM people p ORDER BY p.id", False),
    ("SELECT id, email FROM people WHERE email IN ('ada@example.com', 'x@example.com') ORDER BY id", False),
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


def test_mariadb_a_number_against_text_reads_its_prefix_and_is_an_oracle(people) -> None:
    """MariaDB converts the text to a number: ``'4111 1111 1111 1111' = 4111`` is true, so an "equality
    lookup" with a number reads the first group of a card number."""
    engine, target, maria = people
    with maria.server.admin() as admin, admin.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS demo.cards (id INT PRIMARY KEY, card_number VARCHAR(30), pin INT)")
        cur.execute("DELETE FROM demo.cards")
        cur.execute("INSERT INTO demo.cards VALUES (1, '4111 1111 1111 1111', 1234)")
        cur.execute("GRANT SELECT ON demo.cards TO 'reader'@'127.0.0.1'")
        cur.execute("SELECT id FROM demo.cards WHERE card_number = 4111")
        assert cur.fetchall(), "the oracle exists on the server"
    target = Target.model_validate({**target.model_dump(), "sensitive": {
        "columns": [{"column": "cards.pin", "type": "pin"}]}})
    guard = LineageGuard()
    for sql, predicate in [("SELECT id FROM cards WHERE card_number = 4111", True),
                           ("SELECT id FROM cards WHERE card_number IN (4110, 4111)", True),
                           ("SELECT id FROM cards WHERE card_number = TRUE", True),
                           ("SELECT id FROM cards WHERE card_number = '4111 1111 1111 1111'", False),
                           ("SELECT id FROM cards WHERE pin = 1234", False)]:  # a number column: a lookup
        classification = guard.refine(target, "mysql", sql, classify_sql(sql, "mysql"),
                                      lambda: engine.read_schema(target, maria.reader))
        assert bool(classification.details["lineage"].get("predicates")) is predicate, sql


def test_mariadb_errors_that_echo_a_value_are_withheld(people) -> None:
    """The classic error-based read: grouping by ``CONCAT(value, FLOOR(RAND(0)*2))`` makes MariaDB report a
    duplicate key that quotes the value."""
    from broker.execute.masking import masked_failure
    from broker.lineage.guard import withhold
    from broker.problems import BrokerError

    engine, target, maria = people
    sql = "SELECT COUNT(*), CONCAT(p1.email, FLOOR(RAND(0) * 2)) x FROM people p1, people p2, people p3, people p4 " \
          "GROUP BY x"
    classification = LineageGuard().refine(target, "mysql", sql, classify_sql(sql, "mysql"),
                                           lambda: engine.read_schema(target, maria.reader))
    assert classification.risk.value == "sensitive-predicate"
    with pytest.raises(BrokerError) as caught:
        engine.execute(target, Command("sql", sql=sql), maria.reader, ExecutionLimits(), read_only=True)
    assert any(e in caught.value.detail for e in EMAILS), caught.value.detail  # the raw message carries one
    failure = masked_failure(caught.value, _Source(), withhold=withhold(classification))
    assert not any(e in failure.detail for e in EMAILS) and "withheld" in failure.detail
    assert failure.extra.get("errno")


class _Source:
    def get(self) -> Masker:
        return MASKER
