"""The second wall: writes smuggled past the classifier (by calling the engine directly with
``read_only=True``) are refused by the database itself, and leave no trace.

Each statement is also checked against the classifier, so the table doubles as proof that the
first wall would have stopped it too. The last tests show what a read-only transaction does NOT
stop (advisory locks, session settings): there the classifier is the only wall.
"""

from __future__ import annotations

import pytest

from broker.guard.sql import classify_sql
from broker.problems import CommandFailed
from broker.targets import Command, ExecutionLimits, create_engine

LIMITS = ExecutionLimits(max_rows=100, max_bytes=100_000, timeout_ms=3000)

PG_WRITES = [
    "INSERT INTO orders VALUES (9, 'x', 1)",
    "UPDATE orders SET status = 'void' WHERE id = 1",
    "DELETE FROM orders WHERE id = 1",
    "DELETE FROM orders",
    "WITH d AS (DELETE FROM orders RETURNING *) SELECT count(*) FROM d",
    "WITH u AS (UPDATE orders SET amount = 0 WHERE id = 2 RETURNING id) SELECT * FROM u",
    "SELECT * FROM orders FOR UPDATE",
    "SELECT * FROM orders WHERE id = 1 FOR NO KEY UPDATE",
    "SELECT nextval('order_ids')",
    "SELECT setval('order_ids', 42)",
    "SELECT purge_orders()",
    "CALL archive_orders()",
    "DO $$BEGIN DELETE FROM orders; END$$",
    "CREATE TABLE smuggled (a int)",
    "CREATE TEMP TABLE smuggled AS SELECT 1",
    "SELECT * INTO smuggled FROM orders",
    "DROP TABLE orders",
    "TRUNCATE orders",
    "ALTER TABLE orders ADD COLUMN smuggled int",
    "COMMENT ON TABLE orders IS 'smuggled'",
    "GRANT SELECT ON orders TO PUBLIC",
    "EXPLAIN ANALYZE DELETE FROM orders",
    "MERGE INTO orders o USING (SELECT 1 AS id) s ON o.id = s.id WHEN MATCHED THEN DELETE",
]

MYSQL_WRITES = [
    "INSERT INTO orders VALUES (9, 'x', 1)",
    "REPLACE INTO orders VALUES (1, 'void', 0)",
    "UPDATE orders SET status = 'void' WHERE id = 1",
    "DELETE FROM orders WHERE id = 1",
    "DELETE FROM orders",
    "SELECT * FROM orders FOR UPDATE",
    "SELECT NEXTVAL(order_ids)",
    "CREATE TABLE smuggled (a INT)",
    "CREATE TEMPORARY TABLE smuggled (a INT)",
    "CREATE TABLE smuggled AS SELECT * FROM orders",
    "DROP TABLE orders",
    "TRUNCATE TABLE orders",
    "ALTER TABLE orders ADD COLUMN smuggled INT",
    "RENAME TABLE orders TO smuggled",
    "LOCK TABLES orders WRITE",
    "ANALYZE DELETE FROM orders",  # MariaDB's EXPLAIN ANALYZE: it runs the DELETE
]

# Refused for another reason than the read-only transaction: privileges or the protocol.
MYSQL_OTHER_REFUSALS = [
    "SELECT * FROM orders INTO OUTFILE '/tmp/smuggled.csv'",  # no FILE privilege (the read-only role)
    "SELECT 1; DELETE FROM orders",  # CLIENT.MULTI_STATEMENTS is off: a syntax error
    "LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE orders",  # CLIENT.LOCAL_FILES is off
]
PG_OTHER_REFUSALS = [
    "SELECT 1; DELETE FROM orders",  # the extended query protocol takes one statement
]


def _intact_pg(pg) -> None:
    with pg.server.admin("demo") as db:
        assert db.execute("SELECT count(*), sum(amount) FROM orders").fetchone() == (3, pytest.approx(110.50))
        tables = {r[0] for r in db.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert "orders" in tables and "smuggled" not in tables
        assert db.execute("SELECT last_value, is_called FROM order_ids").fetchone() == (1, False)
        assert db.execute("SELECT obj_description('orders'::regclass)").fetchone() == (None,)


def _intact_mysql(maria) -> None:
    with maria.server.admin("demo") as admin, admin.cursor() as cur:
        cur.execute("SELECT COUNT(*), SUM(amount) FROM orders")
        count, total = cur.fetchone()
        assert (count, float(total)) == (3, 110.50)
        cur.execute("SHOW TABLES")
        tables = {r[0] for r in cur.fetchall()}
        assert {"orders", "order_ids"} <= tables and "smuggled" not in tables


@pytest.fixture(scope="module")
def pg_engine():
    engine = create_engine("postgres")
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def mysql_engine():
    engine = create_engine("mysql")
    yield engine
    engine.close()


@pytest.mark.parametrize("sql", PG_WRITES)
def test_postgres_refuses_smuggled_write(pg, pg_engine, sql: str) -> None:
    assert not classify_sql(sql, "postgres").read_only, "the classifier must stop it as well"
    with pytest.raises(CommandFailed) as refused:
        pg_engine.execute(pg.target, Command("sql", sql=sql), pg.writer, LIMITS, read_only=True)
    assert refused.value.code == "read_only_violation", refused.value.detail
    _intact_pg(pg)


@pytest.mark.parametrize("sql", PG_OTHER_REFUSALS)
def test_postgres_refuses_other_smuggling(pg, pg_engine, sql: str) -> None:
    assert not classify_sql(sql, "postgres").read_only
    with pytest.raises(CommandFailed):
        pg_engine.execute(pg.target, Command("sql", sql=sql), pg.writer, LIMITS, read_only=True)
    _intact_pg(pg)


@pytest.mark.mariadb
@pytest.mark.parametrize("sql", MYSQL_WRITES)
def test_mariadb_refuses_smuggled_write(maria, mysql_engine, sql: str) -> None:
    assert not classify_sql(sql, "mysql").read_only, "the classifier must stop it as well"
    with pytest.raises(CommandFailed) as refused:
        mysql_engine.execute(maria.target, Command("sql", sql=sql), maria.writer, LIMITS, read_only=True)
    assert refused.value.code == "read_only_violation", refused.value.detail
    _intact_mysql(maria)


@pytest.mark.mariadb
@pytest.mark.parametrize("sql", MYSQL_OTHER_REFUSALS)
def test_mariadb_refuses_other_smuggling(maria, mysql_engine, sql: str) -> None:
    assert not classify_sql(sql, "mysql").read_only
    with pytest.raises(CommandFailed) as refused:
        mysql_engine.execute(maria.target, Command("sql", sql=sql), maria.writer, LIMITS, read_only=True)
    assert refused.value.code == "query_failed"
    _intact_mysql(maria)


@pytest.mark.mariadb
def test_mariadb_read_only_role_refuses_writes_even_outside_read_only(maria, mysql_engine) -> None:
    """The third layer: the catalogued credential of a read-only target is a SELECT-only login."""
    with pytest.raises(CommandFailed) as refused:
        mysql_engine.execute(maria.target, Command("sql", sql="DELETE FROM orders WHERE id = 1"), maria.reader,
                             LIMITS, read_only=False)
    assert refused.value.extra["errno"] == 1142  # command denied to user
    _intact_mysql(maria)


def test_postgres_read_only_role_refuses_writes_even_outside_read_only(pg, pg_engine) -> None:
    with pytest.raises(CommandFailed) as refused:
        pg_engine.execute(pg.target, Command("sql", sql="DELETE FROM orders WHERE id = 1"), pg.reader, LIMITS,
                          read_only=False)
    assert refused.value.extra["sqlstate"] == "42501"  # insufficient privilege
    _intact_pg(pg)


# --- what only the classifier stops -------------------------------------------------------------
@pytest.mark.parametrize("sql", ["SELECT pg_advisory_lock(7)", "SELECT set_config('work_mem', '1GB', false)",
                                 "SELECT pg_notify('c', 'x')"])
def test_postgres_read_only_transaction_lets_these_through_so_the_classifier_must_not(pg, pg_engine,
                                                                                      sql: str) -> None:
    result = pg_engine.execute(pg.target, Command("sql", sql=sql), pg.writer, LIMITS, read_only=True)
    assert result.row_count == 1  # the database ran it inside the read-only transaction
    assert not classify_sql(sql, "postgres").read_only


@pytest.mark.mariadb
@pytest.mark.parametrize("sql", ["SELECT GET_LOCK('smuggled', 0)", "SELECT @x := 1",
                                 "SELECT id FROM orders WHERE id = 1 LOCK IN SHARE MODE"])
def test_mariadb_read_only_transaction_lets_these_through_so_the_classifier_must_not(maria, mysql_engine,
                                                                                     sql: str) -> None:
    result = mysql_engine.execute(maria.target, Command("sql", sql=sql), maria.writer, LIMITS, read_only=True)
    assert result.row_count == 1
    assert not classify_sql(sql, "mysql").read_only
