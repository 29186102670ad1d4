"""A read is what PostgreSQL will actually run: the attacks of issue 14, through the whole broker.

Each statement below was once classified ``read`` and run. Each must now be refused before it runs
(the dev policy allows reads only), in several spellings, and the database must show that nothing
ran: the other session is still alive, the advisory lock is free, no transaction id was consumed.
Ordinary reads stay reads.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from devhost.stack import DEMO_SECRET

LOCK_KEY = 777001


@pytest.fixture
def victim(stack) -> Iterator[psycopg.Connection]:
    """Another session of the broker's own role: what a terminate or cancel could reach."""
    credential = json.loads(stack.keyvault.store.get(DEMO_SECRET, None)["value"])
    conn = psycopg.connect(host="127.0.0.1", port=stack.postgres.port, dbname="demo",
                           user=credential["username"], password=credential["password"], autocommit=True)
    yield conn
    conn.close()


@pytest.fixture
def traps(stack) -> Iterator[None]:
    """A view and an operator that call dangerous functions, as an application might have them."""
    with stack.postgres.admin("demo") as db:
        db.execute("CREATE VIEW trap_sessions AS SELECT pid, pg_terminate_backend(pid) AS gone FROM pg_stat_activity")
        db.execute("CREATE VIEW trap_outer AS SELECT * FROM trap_sessions")
        db.execute("CREATE FUNCTION trap_kill(int, int) RETURNS bool LANGUAGE sql AS 'SELECT pg_terminate_backend($1)'")
        db.execute("CREATE OPERATOR public.|~| (LEFTARG = int, RIGHTARG = int, FUNCTION = trap_kill)")
        db.execute("GRANT SELECT ON trap_sessions, trap_outer TO broker_agent")
    yield
    with stack.postgres.admin("demo") as db:
        db.execute("DROP VIEW trap_outer, trap_sessions")
        db.execute("DROP OPERATOR public.|~| (int, int)")
        db.execute("DROP FUNCTION trap_kill(int, int)")


KILLS = [
    "SELECT (pid).pg_terminate_backend FROM pg_stat_activity WHERE pid = {pid}",
    'SELECT (pid)."pg_terminate_backend" FROM pg_catalog.pg_stat_activity WHERE pid = {pid}',
    "SELECT (s.pid).PG_TERMINATE_BACKEND FROM pg_stat_activity s WHERE s.pid = {pid}",
    "SELECT a.pg_terminate_backend FROM (SELECT pid FROM pg_stat_activity WHERE pid = {pid}) a",
    "SELECT ({pid}).pg_cancel_backend",
    "SELECT pg_catalog.pg_terminate_backend({pid})",
    'SELECT U&"pg_terminate_backen\\0064"({pid})',
    "SELECT * FROM trap_sessions WHERE pid = {pid}",
    "SELECT gone FROM public.trap_outer WHERE pid = {pid}",
    "SELECT pid |~| 0 FROM pg_stat_activity WHERE pid = {pid}",
    "SELECT pid OPERATOR(public.|~|) 0 FROM pg_stat_activity WHERE pid = {pid}",
]


@pytest.mark.parametrize("template", KILLS)
def test_no_spelling_of_a_backend_kill_is_a_read(api, victim, traps, template: str) -> None:
    r = api.execute({"target": "demo-postgres", "sql": template.format(pid=victim.info.backend_pid)})
    assert r.status_code == 403, r.text
    assert r.json()["code"] == "policy_denied" and r.json()["risk"] != "read"
    assert victim.execute("SELECT 1").fetchone() == (1,), "the other session must still be alive"


LOCKS = [
    f"SELECT ({LOCK_KEY}::bigint).pg_advisory_lock",
    f'SELECT ({LOCK_KEY}::int8)."pg_try_advisory_lock"',
    f"SELECT x.pg_advisory_lock FROM (SELECT {LOCK_KEY}::bigint) AS x(k)",
    f"SELECT pg_catalog.pg_advisory_xact_lock({LOCK_KEY})",
    f"SELECT 1 WHERE pg_try_advisory_lock({LOCK_KEY})",
]


@pytest.mark.parametrize("sql", LOCKS)
def test_no_spelling_of_an_advisory_lock_is_a_read(api, stack, sql: str) -> None:
    r = api.execute({"target": "demo-postgres", "sql": sql})
    assert r.status_code == 202, r.text  # a write: it waits for a DBA, it does not run
    assert r.json()["risk"] == "write"
    with stack.postgres.admin("demo") as db:
        assert db.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone() == (0,)


@pytest.mark.parametrize("sql", ["SELECT txid_current()", "SELECT pg_catalog.pg_current_xact_id()",
                                 'SELECT "txid_current"() FROM customers LIMIT 3',
                                 "SELECT * FROM ts_stat('SELECT to_tsvector(name) FROM customers')",
                                 "SELECT query_to_xml('SELECT 1', true, false, '')",
                                 "SELECT table_to_xml('trap_sessions', true, false, '')",
                                 "SELECT pg_sleep(0.1)"])
def test_transaction_ids_sql_text_and_sleeps_are_not_reads(api, stack, traps, sql: str) -> None:
    # PostgreSQL's own statement log proves the statement never reached the server (a cluster-wide
    # xid counter is not: anything else running on the shared test cluster moves it).
    marker = f"probe-{uuid.uuid4().hex}"
    r = api.execute({"target": "demo-postgres", "sql": f"{sql} /* {marker} */"})
    assert r.status_code in (202, 403), r.text  # a write waits for a DBA; the others are denied
    assert r.json()["risk"] != "read"
    assert marker not in stack.postgres.log_path.read_text(errors="replace")


@pytest.mark.parametrize("sql", [
    "SELECT c.name, count(o.id), sum(o.amount) FROM customers c JOIN orders o ON o.customer_id = c.id "
    "GROUP BY c.name ORDER BY 2 DESC LIMIT 5",
    "WITH big AS (SELECT * FROM orders WHERE amount > 100) SELECT status, avg(amount) FROM big GROUP BY status",
    "SELECT id, rank() OVER (PARTITION BY status ORDER BY amount DESC) FROM orders LIMIT 10",
    "SELECT items->0->>'sku', items @> '[{\"qty\": 1}]'::jsonb, tags && ARRAY['gift'] FROM orders LIMIT 5",
    "SELECT date_trunc('month', placed_at), placed_at + interval '1 day', now() - placed_at, "
    "extract(year FROM placed_at) FROM orders LIMIT 5",
    "SELECT c.id FROM customers c WHERE c.name ILIKE '%a%' AND c.id BETWEEN 1 AND 50 "
    "AND c.id IN (SELECT customer_id FROM orders) ORDER BY c.created_at",
    "SELECT lower(name), length(name)::text, coalesce(name, '-') FROM customers LIMIT 3",
    "SELECT count(*) FROM pg_stat_activity",
    "SELECT id, ROW(id, status) FROM orders WHERE id = ALL(ARRAY[1, 1]) OR status = SOME(ARRAY['paid'])",
])
def test_ordinary_reads_stay_reads(api, sql: str) -> None:
    r = api.execute({"target": "demo-postgres", "sql": sql})
    assert r.status_code == 200, r.text
    assert r.json()["risk"] == "read"


@pytest.mark.parametrize("sql", ["UPDATE customers SET notes = 'x' WHERE id IS NOT NULL",
                                 "UPDATE customers SET notes = 'x' WHERE id = id",
                                 "DELETE FROM orders WHERE id > 0",
                                 "UPDATE customers SET notes = 'x' WHERE id = 3 OR id <> 3"])
def test_unbounded_changes_are_destructive_and_do_not_run(api, stack, sql: str) -> None:
    """Under the dev policy a write waits for a DBA; a destructive change matches no rule at all."""
    with stack.postgres.admin("demo") as db:
        before = db.execute("SELECT count(*), md5(string_agg(notes, ',' ORDER BY id)) FROM customers").fetchone()
    r = api.execute({"target": "demo-postgres", "sql": sql})
    assert r.status_code == 403, r.text
    assert r.json()["risk"] == "destructive"
    with stack.postgres.admin("demo") as db:
        after = db.execute("SELECT count(*), md5(string_agg(notes, ',' ORDER BY id)) FROM customers").fetchone()
    assert after == before
