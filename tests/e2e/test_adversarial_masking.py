"""An adversarial agent's read queries against the demo database (issue 13): every answer is compared
with the raw answer read directly from the database, and nothing derived from a sensitive value
(email, phone, card number, the secrets pasted into notes) comes back: no cell equals its raw cell,
no cell or error text carries a raw sensitive value. Queries whose sensitive columns shape the answer
(an oracle) must wait for approval (202, ``sensitive-predicate``) and return nothing.
"""

from __future__ import annotations

import json
import re

import psycopg
import pytest

# Derived outputs that come back masked whole (200): each output column derives from a sensitive one.
MASKED = [
    "SELECT email AS x FROM customers ORDER BY id LIMIT 30",
    "SELECT card_number AS order_ref FROM customers ORDER BY id LIMIT 30",
    "SELECT phone AS note FROM customers ORDER BY id LIMIT 30",
    "SELECT c.email FROM customers c ORDER BY c.id LIMIT 30",
    "SELECT t.* FROM (SELECT email, phone, card_number FROM customers ORDER BY id LIMIT 30) t",
    "WITH x AS (SELECT email AS a FROM customers) SELECT a FROM x LIMIT 30",
    "WITH x AS (SELECT card_number AS a FROM customers), y AS (SELECT a AS b FROM x) SELECT b FROM y LIMIT 30",
    "SELECT e FROM (SELECT email AS e FROM customers) s LIMIT 30",
    "SELECT email FROM customers UNION ALL SELECT card_number FROM customers LIMIT 30",
    "SELECT name FROM customers WHERE false UNION ALL SELECT email FROM customers LIMIT 30",
    "SELECT (SELECT email FROM customers c2 WHERE c2.id = c.id) FROM customers c ORDER BY c.id LIMIT 30",
    "SELECT c FROM customers c ORDER BY id LIMIT 30",
    "SELECT x FROM customers c, LATERAL (SELECT c.email AS x) l ORDER BY c.id LIMIT 30",
    "SELECT u FROM unnest(ARRAY(SELECT email FROM customers ORDER BY id LIMIT 30)) AS u",
    "SELECT u FROM unnest(ARRAY(SELECT card_number FROM customers ORDER BY id LIMIT 30)) AS u",
    "SELECT email FROM customers WHERE email = 'ada.lovelace1@example.com' OR id < 20",
    "SELECT email, count(*) FROM customers GROUP BY email LIMIT 30",
    "SELECT DISTINCT phone FROM customers LIMIT 30",
    "SELECT email, count(*) OVER (PARTITION BY email) FROM customers LIMIT 30",
]

# A sensitive column is transformed or shapes the answer: an oracle, sent to approval (202).
ORACLES = [
    "SELECT reverse(email) FROM customers",
    "SELECT encode(convert_to(email, 'UTF8'), 'hex') FROM customers",
    "SELECT encode(convert_to(card_number, 'UTF8'), 'base64') FROM customers",
    "SELECT md5(email) FROM customers",
    "SELECT translate(card_number, '0123456789', 'abcdefghij') FROM customers",
    "SELECT replace(email, '@', ' at ') FROM customers",
    "SELECT split_part(email, '@', 1), split_part(email, '@', 2) FROM customers",
    "SELECT substr(email, g, 1) FROM customers, generate_series(1, 40) g WHERE id = 1",
    "SELECT substr(c.email, g, 1) FROM customers c, LATERAL generate_series(1, length(c.email)) g",
    "SELECT ascii(substr(email, 1, 1)) FROM customers",
    "SELECT lpad(card_number, 30, '*') FROM customers",
    "SELECT upper(email) FROM customers",
    "SELECT email || '' FROM customers",
    "SELECT concat('x', phone) FROM customers",
    "SELECT format('%s', card_number) FROM customers",
    "SELECT string_agg(email, ',') FROM customers",
    "SELECT array_agg(card_number) FROM customers",
    "SELECT json_agg(email) FROM customers",
    "SELECT json_build_object('e', email) FROM customers",
    "SELECT jsonb_build_array(phone) FROM customers",
    "SELECT row_to_json(c) FROM customers c",
    "SELECT to_jsonb(c) - 'id' FROM customers c",
    "SELECT json_object_agg(email, id) FROM customers",
    "SELECT (c).email FROM customers c",
    "SELECT email::bytea FROM customers",
    "SELECT CAST(card_number AS varchar(40)) FROM customers",
    "SELECT id FROM customers WHERE email LIKE 'a%'",
    "SELECT id FROM customers WHERE substr(card_number, 1, 1) = '4'",
    "SELECT id FROM customers WHERE ascii(substr(email, 1, 1)) > 100",
    "SELECT id FROM customers WHERE email > 'm'",
    "SELECT id FROM customers ORDER BY email",
    "SELECT id FROM customers ORDER BY card_number DESC LIMIT 1",
    "SELECT id, CASE WHEN email LIKE 'a%' THEN 1 ELSE 0 END FROM customers",
    "SELECT id, CASE WHEN substr(email, 1, 1) = 'a' THEN pg_sleep(0.2) END FROM customers WHERE id = 1",
    "SELECT pg_sleep(CASE WHEN card_number LIKE '4%' THEN 0.2 ELSE 0 END) FROM customers WHERE id = 1",
    "SELECT id, row_number() OVER (ORDER BY email) FROM customers",
    "SELECT id, rank() OVER (PARTITION BY substr(email, 1, 1) ORDER BY id) FROM customers",
    "SELECT length(email) FROM customers",
    "SELECT substr(email, 1, 1), count(*) FROM customers GROUP BY 1",
    "SELECT count(*) FROM customers GROUP BY length(card_number)",
    "SELECT id FROM customers GROUP BY id HAVING max(email) > 'm'",
    "SELECT o.id FROM orders o JOIN customers c ON c.id = o.customer_id AND c.email LIKE 'a%'",
    "SELECT 1 WHERE EXISTS (SELECT 1 FROM customers WHERE email LIKE 'a%')",
    "SELECT id FROM customers WHERE id = (SELECT ascii(substr(email, 1, 1)) FROM customers LIMIT 1)",
    "WITH x AS (SELECT reverse(email) AS r FROM customers) SELECT r FROM x",
    "WITH x AS (SELECT email AS e FROM customers) SELECT upper(e) FROM x",
    "SELECT e FROM (SELECT email AS e FROM customers) s WHERE e LIKE '%example%'",
    "SELECT email FROM customers UNION SELECT 'guess' || substr(email, 1, 2) FROM customers",
    "WITH RECURSIVE r(n, s) AS (SELECT 1, ''::text UNION ALL SELECT n + 1, s || substr((SELECT email FROM "
    "customers WHERE id = 1), n, 1) FROM r WHERE n < 40) SELECT s FROM r",
    "SELECT g FROM customers, generate_series(1, length(email)) g WHERE id = 1",
    "SELECT email::uuid FROM customers",
    "SELECT card_number::int FROM customers",
    "SELECT (phone || '.0.0.0')::inet FROM customers",
    "SELECT regexp_replace(notes, 'sk_live_', 'SK ') FROM customers",
    "SELECT reverse(notes) FROM customers",
    "SELECT substr(notes, 30) FROM customers",
    "EXPLAIN ANALYZE SELECT id FROM customers WHERE email LIKE 'a%'",
    "SELECT count(DISTINCT substr(email, 1, 1)) FROM customers",
    "SELECT id FROM customers LIMIT (SELECT length(email) FROM customers WHERE id = 1)",
]

# Ordinary analytics: they still run and return the raw answer.
ORDINARY = [
    ("SELECT count(*) FROM customers", True),
    ("SELECT count(email), count(DISTINCT email) FROM customers", True),
    ("SELECT status, count(*), sum(amount) FROM orders GROUP BY status ORDER BY status", True),
    ("SELECT c.id, count(o.id) FROM customers c JOIN orders o ON o.customer_id = c.id GROUP BY c.id "
     "ORDER BY c.id LIMIT 20", True),
    ("SELECT id, name FROM customers WHERE email = 'nobody@example.com'", True),
    ("SELECT id, email IS NULL FROM customers ORDER BY id LIMIT 5", True),
    ("SELECT date_trunc('month', placed_at) AS m, avg(amount) FROM orders GROUP BY 1 ORDER BY 1", True),
]

_SECRET_SHAPES = [re.compile(p) for p in (r"sk_live_\w{8,}", r"ghp_\w{20,}", r"AKIA[A-Z2-7]{16}",
                                           r"Password=[^;]+", r"postgres://[^ ]+:[^ ]+@")]


def _raw(stack, sql: str) -> tuple[list[tuple], str]:
    """The raw answer read directly from the database (rows, or the error text)."""
    with stack.postgres.admin("demo") as db:
        try:
            return db.execute(sql).fetchall(), ""
        except psycopg.Error as exc:
            return [], str(exc)


@pytest.fixture(scope="module")
def sensitive_values(stack) -> list[str]:
    with stack.postgres.admin("demo") as db:
        rows = db.execute("SELECT email, phone, card_number, notes FROM customers").fetchall()
    values: set[str] = set()
    for email, phone, card, notes in rows:
        values |= {email, email.upper(), email[::-1], phone, card, card.replace(" ", ""), card[::-1]}
        values |= {m.group(0) for p in _SECRET_SHAPES for m in p.finditer(notes)}
    return sorted(values, key=len, reverse=True)


def _leaks(text: str, values: list[str]) -> list[str]:
    return [v for v in values if len(v) >= 6 and v in text]


def _cells(rows: list) -> set[str]:
    return {json.dumps(c, default=str) if not isinstance(c, str) else c for row in rows for c in row
            if c is not None and c != ""}


@pytest.mark.parametrize("sql", MASKED)
def test_derived_outputs_come_back_masked_whole(api, stack, sensitive_values, sql: str) -> None:
    raw, _ = _raw(stack, sql)
    r = api.execute({"target": "demo-postgres", "sql": sql})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["risk"] == "read"
    assert raw and body["rows"], "the comparison needs rows"
    raw_cells = {c for c in _cells(raw) if not c.isdigit()}  # counts and ids are not sensitive
    for row in body["rows"]:
        for cell in row:
            text = cell if isinstance(cell, str) else json.dumps(cell)
            assert text not in raw_cells, (sql, text)
    assert not _leaks(json.dumps(body), sensitive_values)


@pytest.mark.parametrize("sql", ORACLES)
def test_oracles_wait_for_approval_and_return_nothing(api, sensitive_values, sql: str) -> None:
    r = api.execute({"target": "demo-postgres", "sql": sql})
    assert r.status_code in (202, 403), r.text  # pg_sleep is refused outright by the guard (admin)
    body = r.json()
    assert body["risk"] == "sensitive-predicate" if r.status_code == 202 else body["risk"] == "admin"
    assert "rows" not in body and not _leaks(r.text, sensitive_values)


@pytest.mark.parametrize(("sql", "exact"), ORDINARY)
def test_ordinary_analytics_still_work(api, stack, sql: str, exact: bool) -> None:
    raw, _ = _raw(stack, sql)
    r = api.execute({"target": "demo-postgres", "sql": sql})
    assert r.status_code == 200, r.text
    assert r.json()["risk"] == "read"
    assert len(r.json()["rows"]) == len(raw)
    if exact:
        got = [[str(c) for c in row] for row in r.json()["rows"]]
        want = [[str(c) for c in row] for row in raw]
        assert [row[0] for row in got] == [row[0] for row in want] or "date_trunc" in sql


@pytest.mark.parametrize("sql", [
    "SELECT email, 1 / (id - id) FROM customers",
    "SELECT id FROM customers WHERE email <> 'x@example.com' AND name::int > 0",
    "SELECT card_number, name::uuid FROM customers",
    "SELECT phone FROM customers WHERE id = 1 UNION ALL SELECT name::int::text FROM customers",
])
def test_errors_of_statements_reading_sensitive_columns_echo_nothing(api, stack, sensitive_values, sql: str) -> None:
    _, raw_error = _raw(stack, sql)
    assert raw_error, "the statement must fail on the database"
    r = api.execute({"target": "demo-postgres", "sql": sql})
    assert r.status_code >= 400, r.text
    body = r.json()
    assert "withheld" in body["detail"] and body.get("sqlstate")
    with stack.postgres.admin("demo") as db:
        names = [n for (n,) in db.execute("SELECT name FROM customers")]
    assert not _leaks(r.text, sensitive_values) and not any(n in r.text for n in names)


def test_the_suite_is_large_enough() -> None:
    assert len(MASKED) + len(ORACLES) >= 60
