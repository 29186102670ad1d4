"""MySQL/MariaDB reads resolved through the views they name, on the real MariaDB (issue 14)."""

from __future__ import annotations

import pytest

from broker.guard import Risk
from broker.guard.sql_mysql_resolve import relations
from broker.targets.base import Command
from broker.targets.mysql import MySQLEngine


@pytest.fixture(scope="module")
def views(maria):
    with maria.server.admin() as admin, admin.cursor() as cur:
        for sql in [
            "CREATE OR REPLACE VIEW demo.paid AS SELECT id, amount FROM demo.orders WHERE status = 'paid'",
            "CREATE OR REPLACE VIEW demo.paid_total AS SELECT sum(amount) AS total FROM demo.paid",
            "CREATE OR REPLACE VIEW demo.locker AS SELECT GET_LOCK('broker-test', 0) AS got",
            "CREATE OR REPLACE VIEW demo.sleeper AS SELECT id FROM demo.orders WHERE SLEEP(0.01) = 0",
            "CREATE OR REPLACE VIEW demo.Burner AS SELECT BENCHMARK(1000, MD5('x')) AS b",
            "CREATE OR REPLACE VIEW demo.wraps_locker AS SELECT got FROM demo.locker",
            "CREATE OR REPLACE VIEW demo.deeper AS SELECT * FROM demo.wraps_locker",
            "CREATE OR REPLACE FUNCTION demo.slow_id(x INT) RETURNS INT DETERMINISTIC RETURN x + SLEEP(0)",
            "CREATE OR REPLACE VIEW demo.via_function AS SELECT demo.slow_id(id) AS i FROM demo.orders",
        ]:
            cur.execute(sql)
    yield maria


def classify(engine: MySQLEngine, db, sql: str, secret=None):
    command = Command("sql", sql=sql)
    return engine.resolve(db.target, command, engine.classify(command), lambda: secret or db.reader)


@pytest.fixture
def engine():
    e = MySQLEngine()
    yield e
    e.close()


@pytest.mark.parametrize("sql", [
    "SELECT * FROM locker",
    "SELECT got FROM demo.locker",
    "SELECT * FROM `demo`.`locker`",
    "SELECT * FROM LOCKER",
    "SELECT o.id FROM orders o JOIN locker l ON l.got = 1",
    "SELECT id FROM orders WHERE id IN (SELECT got FROM locker)",
    "WITH x AS (SELECT * FROM locker) SELECT * FROM x",
    "SELECT * FROM (SELECT * FROM locker) AS sub",
    "SELECT * FROM wraps_locker",
    "SELECT * FROM deeper",
    "SELECT * FROM sleeper",
    "SELECT * FROM burner",
    "SELECT * FROM via_function",
    "SELECT 1 UNION SELECT got FROM locker",
])
def test_a_view_that_locks_sleeps_or_calls_a_stored_function_is_not_a_read(engine, views, sql) -> None:
    verdict = classify(engine, views, sql)
    assert verdict.risk is not Risk.READ, verdict
    assert verdict.details.get("resolved_by") == "catalog"


@pytest.mark.parametrize("sql", [
    "SELECT * FROM paid",
    "SELECT total FROM demo.paid_total",
    "SELECT o.status, count(*) FROM orders o GROUP BY o.status",
    "WITH locker AS (SELECT 1 AS got) SELECT got FROM locker",  # a CTE, not the view
])
def test_ordinary_reads_and_harmless_views_stay_reads(engine, views, sql) -> None:
    assert classify(engine, views, sql).risk is Risk.READ


def test_the_second_wall_would_not_stop_the_lock_so_the_guard_must(views) -> None:
    # What the view does when it runs inside the engine's own read-only transaction: it takes the lock.
    with views.server.admin() as admin, admin.cursor() as cur:
        cur.execute("SET SESSION TRANSACTION READ ONLY")
        cur.execute("START TRANSACTION READ ONLY")
        cur.execute("SELECT got FROM demo.locker")
        assert cur.fetchone()[0] == 1
        cur.execute("SELECT IS_USED_LOCK('broker-test') IS NOT NULL")
        assert cur.fetchone()[0] == 1
        cur.execute("ROLLBACK")
        cur.execute("SELECT RELEASE_LOCK('broker-test')")


def test_a_view_the_role_cannot_see_into_is_not_a_read(engine, views) -> None:
    with views.server.admin() as admin, admin.cursor() as cur:
        cur.execute("CREATE USER IF NOT EXISTS 'blind'@'127.0.0.1' IDENTIFIED BY 'blind-pw-1'")
        cur.execute("GRANT SELECT ON demo.* TO 'blind'@'127.0.0.1'")  # no SHOW VIEW
    from tests.targets.conftest import _secret

    verdict = classify(engine, views, "SELECT * FROM paid", secret=_secret("blind", "blind-pw-1"))
    assert verdict.risk is Risk.UNKNOWN and "SHOW VIEW" in verdict.reason


def test_definitions_are_cached_per_target(engine, views) -> None:
    assert classify(engine, views, "SELECT * FROM paid").risk is Risk.READ
    with views.server.admin() as admin, admin.cursor() as cur:
        cur.execute("CREATE OR REPLACE VIEW demo.paid AS SELECT GET_LOCK('x', 0) AS id")
    try:
        assert classify(engine, views, "SELECT * FROM paid").risk is Risk.READ  # cached within the TTL
        engine._views.forget(views.target.name)
        assert classify(engine, views, "SELECT * FROM paid").risk is not Risk.READ
    finally:
        with views.server.admin() as admin, admin.cursor() as cur:
            cur.execute("CREATE OR REPLACE VIEW demo.paid AS SELECT id, amount FROM demo.orders WHERE status = 'paid'")


def test_relations_qualify_with_the_default_schema_and_skip_ctes() -> None:
    assert relations("WITH a AS (SELECT 1) SELECT * FROM a, b, other.C", "Demo") == {("demo", "b"), ("other", "c")}


def test_an_unreachable_catalog_is_unavailable(engine, views) -> None:
    from broker.catalog import Target
    from broker.problems import Unavailable

    gone = Target(name="gone", engine="mysql", credential={"source": "key-vault", "secret": "x"},
                  connection={"host": "127.0.0.1", "port": 9, "database": "demo"})
    command = Command("sql", sql="SELECT 1")
    with pytest.raises(Unavailable):
        engine.resolve(gone, command, engine.classify(command), lambda: views.reader)


def test_a_write_that_replaces_a_view_is_judged_by_the_new_definition_at_once(engine, views) -> None:
    """Definitions are cached for a minute; an (approved) write through the engine that replaces a
    view drops them, so the next read of the view is resolved by what it now does."""
    from broker.targets import ExecutionLimits

    limits = ExecutionLimits(max_rows=10, max_bytes=10_000, timeout_ms=3000)
    run = lambda sql: engine.execute(views.target, Command("sql", sql=sql), views.writer, limits,  # noqa: E731
                                     read_only=False)
    run("CREATE OR REPLACE VIEW demo.turncoat AS SELECT 1 AS id")
    try:
        assert classify(engine, views, "SELECT * FROM turncoat").risk is Risk.READ
        run("CREATE OR REPLACE VIEW demo.turncoat AS SELECT GET_LOCK('turncoat', 0) AS id")
        assert classify(engine, views, "SELECT * FROM turncoat").risk is not Risk.READ
    finally:
        run("DROP VIEW IF EXISTS demo.turncoat")
