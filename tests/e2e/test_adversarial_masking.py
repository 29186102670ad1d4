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
    # Spellings of the same bare column (issue 13's audit, a13).
    "SELECT c FROM customers AS t(a, b, c) ORDER BY a LIMIT 30",
    "SELECT public.customers.email FROM public.customers ORDER BY id LIMIT 30",
    "SELECT demo.public.customers.card_number FROM demo.public.customers ORDER BY id LIMIT 30",
    "SELECT x.phone FROM customers x JOIN customers y USING (id) ORDER BY x.id LIMIT 30",
    "SELECT v.x, c.email FROM (VALUES (1, 10), (2, 20)) v(i, x) JOIN customers c ON c.id = v.i",
    "SELECT x FROM (SELECT email x FROM customers UNION ALL SELECT 'guess@example.com') s LIMIT 30",
    "SELECT array(SELECT email FROM customers ORDER BY id LIMIT 30)",
    "SELECT * FROM unnest(ARRAY(SELECT email FROM customers ORDER BY id LIMIT 30)) WITH ORDINALITY AS u(e, n)",
    "SELECT i, e FROM ROWS FROM (generate_series(1, 30), unnest(ARRAY(SELECT card_number FROM customers "
    "ORDER BY id LIMIT 30))) AS r(i, e)",
    "SELECT email FROM customers WHERE email <> 'x' AND id IN (SELECT id FROM customers WHERE phone <> 'y') LIMIT 30",
    "SELECT id, email FROM customers WHERE email IS NOT NULL ORDER BY id LIMIT 30",
]

# A sensitive column is transformed or shapes the answer: an oracle, sent to approval (202).
ORACLES = [
    "SELECT row(email, phone)::text FROM customers",  # a row constructor transforms them: held
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
    # JSON/array/row builders, whole rows as text, aggregates, string functions (issue 13's audit, a13).
    "SELECT to_jsonb(c) FROM customers c",
    "SELECT json_agg(c) FROM customers c",
    "SELECT jsonb_agg(email) FROM customers",
    "SELECT c::text FROM customers c",
    "SELECT customers::text FROM customers",
    "SELECT (c).* FROM customers c",
    "SELECT j->>'email' FROM (SELECT to_jsonb(c) j FROM customers c) s",
    "SELECT j.value FROM customers c, jsonb_each_text(to_jsonb(c)) j",
    "SELECT jsonb_path_query(to_jsonb(c), '$.email') FROM customers c",
    "SELECT * FROM json_to_recordset((SELECT json_agg(c) FROM customers c)) AS r(email text)",
    "SELECT xmlelement(name e, email)::text FROM customers",
    "SELECT string_agg(email, ',' ORDER BY id) FROM customers",
    "SELECT array_to_string(array_agg(email), ';') FROM customers",
    "SELECT unnest(ARRAY[email, phone]) FROM customers",
    "SELECT format('%s|%s', email, phone) FROM customers",
    "SELECT regexp_replace(email, '@', '#') FROM customers",
    "SELECT overlay(email placing 'X' from 1 for 1) FROM customers",
    "SELECT encode(convert_to(email, 'UTF8'), 'escape') FROM customers",
    "SELECT md5(card_number) FROM customers",
    "SELECT sha256(email::bytea) FROM customers",
    "SELECT quote_literal(email) FROM customers",
    "SELECT to_tsvector(email)::text FROM customers",
    "SELECT email COLLATE \"C\" FROM customers",
    "SELECT coalesce(email, 'x') FROM customers",
    "SELECT CASE WHEN true THEN card_number END FROM customers",
    "SELECT min(email), max(card_number) FROM customers",
    "SELECT mode() WITHIN GROUP (ORDER BY email) FROM customers",
    "SELECT lag(email) OVER (ORDER BY id) FROM customers",
    "SELECT first_value(phone) OVER (PARTITION BY id) FROM customers",
    "SELECT c.id, p FROM customers c, LATERAL unnest(string_to_array(c.email, '@')) p",
    "SELECT regexp_split_to_table(email, '@') FROM customers",
    "SELECT (SELECT email::int FROM customers LIMIT 1)",
    "SELECT most_common_vals::text FROM pg_stats WHERE tablename = 'customers'",
    "SELECT count(*) FILTER (WHERE email LIKE 'a%') FROM customers",
    "SELECT count(email) OVER (ORDER BY email) FROM customers",
    "SELECT id FROM customers WHERE email = ANY(ARRAY['a@example.com'])",
    "SELECT id FROM customers WHERE email IN (SELECT 'a@example.com')",
    "SELECT id FROM customers WHERE email = 'a@example.com'::text",
    "SELECT id FROM customers WHERE email IS DISTINCT FROM 'x'",
    "SELECT * FROM customers c1 JOIN customers c2 USING (email)",
    "SELECT id FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.status = c.email)",
    # Grouping, deduplicating or partitioning by a sensitive column: the engine may sort by it, so the
    # rows' order follows it as ORDER BY would; with a guess unioned in beside the stored value, 64 such
    # reads extracted 12 characters of an email before the fix (a13).
    "SELECT id, count(*) OVER (PARTITION BY x) FROM (SELECT id, email x FROM customers WHERE id = 1 "
    "UNION ALL SELECT -1, 'm') s",
    "SELECT id, count(*) OVER (PARTITION BY email) FROM customers",
    "SELECT email, count(*) OVER (PARTITION BY email) FROM customers LIMIT 30",
    "SELECT min(id) FROM customers GROUP BY email, to_tsvector(name)",
    "SELECT email, count(*) FROM customers GROUP BY email LIMIT 30",
    "SELECT x, t FROM (SELECT email x, 1 t FROM customers WHERE id = 1 UNION ALL SELECT 'm', 2) s GROUP BY x, t",
    "SELECT DISTINCT phone FROM customers LIMIT 30",
    "SELECT DISTINCT x, t FROM (SELECT email x, 1 t FROM customers WHERE id = 1 UNION ALL SELECT 'm', 2) s",
    "SELECT email, 1 FROM customers WHERE id = 1 UNION SELECT 'm', 2",
    "SELECT email FROM customers GROUP BY GROUPING SETS ((email), ())",
]

# Refused before anything runs, with the risk the guard gives them.
REFUSED = [
    ("SELECT \"row\"(email, phone)::text FROM customers", "exec"),  # quoted: a function call, unknown
    ("SELECT query_to_xml('select email from customers', true, true, '')", "exec"),
    ("SELECT * FROM customers TABLESAMPLE BERNOULLI (50)", "write"),  # the guard does not know it: held
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
    ("SELECT o.status, count(DISTINCT c.email) FROM orders o JOIN customers c ON c.id = o.customer_id "
     "GROUP BY o.status ORDER BY 1", True),
    ("SELECT count(*) FROM (SELECT DISTINCT status FROM orders) s", True),
    ("SELECT id, name FROM customers WHERE email IN ('nobody@example.com', 'x@example.com') OR id = 7", True),
    # Top customers with their (masked) email: aggregate by id, then join the sensitive column as it is.
    ("SELECT c.id, c.email, t.total FROM customers c JOIN (SELECT customer_id, sum(amount) total FROM orders "
     "GROUP BY customer_id) t ON t.customer_id = c.id ORDER BY t.total DESC, c.id LIMIT 5", True),
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


@pytest.mark.parametrize(("sql", "risk"), REFUSED)
def test_statements_the_guard_refuses_return_nothing(api, sensitive_values, sql: str, risk: str) -> None:
    r = api.execute({"target": "demo-postgres", "sql": sql})
    assert r.status_code in (202, 403), r.text
    assert r.json()["risk"] == risk and "rows" not in r.json() and not _leaks(r.text, sensitive_values)


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
    "SELECT id FROM customers WHERE id = 1 AND (SELECT email FROM customers WHERE id = 1)::int > 0",
    "SELECT id::uuid FROM customers WHERE email = 'x'",
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
