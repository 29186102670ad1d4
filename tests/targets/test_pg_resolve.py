"""Catalog resolution on a real PostgreSQL: what a statement reaches beyond the names it spells.

A database of its own (``resolve``) holds what an application might: a shadowing overload in
``public``, a row-level security policy, a partitioned table, a domain whose check calls a
function, user-defined operators and casts. The engine's ``resolve`` must see each; the verdicts
are cached (a second classification sends no catalog query).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from broker.guard import Risk
from broker.guard.sql_pg_resolve import CatalogResolver
from broker.targets import Command, create_engine

SETUP = [
    "CREATE FUNCTION public.lower(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1'",
    "CREATE FUNCTION lockit(int) RETURNS bool LANGUAGE sql STABLE AS 'SELECT pg_try_advisory_lock($1)'",
    "CREATE TABLE guarded (id int PRIMARY KEY, owner text)",
    "ALTER TABLE guarded ENABLE ROW LEVEL SECURITY",
    "CREATE POLICY p ON guarded USING (lockit(id))",
    "CREATE TABLE plain (id int PRIMARY KEY, body text)",
    "CREATE TABLE parted (id int, at date) PARTITION BY RANGE (at)",
    "CREATE TABLE parted_a PARTITION OF parted FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')",
    "CREATE TABLE parted_b PARTITION OF parted FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')",
    "ALTER TABLE parted_b ENABLE ROW LEVEL SECURITY",
    "CREATE POLICY q ON parted_b USING (lockit(id))",
    "CREATE DOMAIN checked AS int CHECK (lockit(VALUE))",
    "CREATE FUNCTION volatile_add(int, int) RETURNS int LANGUAGE sql VOLATILE AS 'SELECT $1 + $2'",
    "CREATE OPERATOR public.### (LEFTARG = int, RIGHTARG = int, FUNCTION = volatile_add)",
    "CREATE TYPE mood AS ENUM ('ok', 'meh')",
    "CREATE FUNCTION mood_of(int) RETURNS mood LANGUAGE sql VOLATILE AS 'SELECT ''ok''::mood'",
    "CREATE CAST (int AS mood) WITH FUNCTION mood_of(int)",
    "CREATE VIEW calm AS SELECT id, upper(body) AS loud FROM plain",
    "CREATE VIEW sly AS SELECT id, (id).lockit AS locked FROM plain",
    "CREATE MATERIALIZED VIEW frozen AS SELECT lockit(id) FROM plain",
    "GRANT SELECT ON ALL TABLES IN SCHEMA public TO writer",
]


@pytest.fixture(scope="module")
def target(pg) -> Iterator[object]:
    with pg.server.admin() as admin:
        admin.execute("CREATE DATABASE resolve")
    with pg.server.admin("resolve") as db:
        for sql in SETUP:
            db.execute(sql)
    connection = pg.target.connection.model_copy(update={"database": "resolve"})
    yield pg.target.model_copy(update={"name": "resolve-pg", "connection": connection})
    with pg.server.admin() as admin:
        admin.execute("DROP DATABASE resolve WITH (FORCE)")


@pytest.fixture(scope="module")
def engine() -> Iterator[object]:
    engine = create_engine("postgres")
    yield engine
    engine.close()


def _resolved(engine, target, secret, sql: str):
    command = Command("sql", sql=sql)
    return engine.resolve(target, command, engine.classify(command), lambda: secret)


@pytest.mark.parametrize(("sql", "risk", "why"), [
    ("SELECT lower(1)", Risk.EXEC, "public.lower"),  # the search path reaches public's overload
    ("SELECT lower('A')", Risk.EXEC, "public.lower"),  # every overload counts: types are not known here
    ("SELECT pg_catalog.lower('A')", Risk.READ, ""),
    ("SELECT * FROM guarded", Risk.EXEC, "row-level security policy"),
    ("SELECT count(*) FROM parted", Risk.EXEC, "partition"),
    ("SELECT count(*) FROM parted_a", Risk.READ, ""),
    ("SELECT 1::checked", Risk.EXEC, "lockit"),
    ("SELECT CAST(1 AS public.checked)", Risk.EXEC, "lockit"),
    ("SELECT 1 ### 2", Risk.UNKNOWN, "sqlglot"),  # stopped before the catalog: a parser does not take it
    ("SELECT 1 OPERATOR(public.###) 2", Risk.EXEC, "volatile_add"),
    ("SELECT 1::mood", Risk.EXEC, "mood_of"),
    ("SELECT * FROM calm", Risk.READ, ""),
    ("SELECT * FROM sly", Risk.EXEC, "lockit"),
    ('SELECT * FROM "sly"', Risk.EXEC, "lockit"),
    ("SELECT * FROM public.sly", Risk.EXEC, "lockit"),
    ("SELECT * FROM frozen", Risk.READ, ""),  # stored rows: reading them calls nothing
    ("SELECT p.lockit FROM plain p", Risk.EXEC, "lockit"),
    ("SELECT p.body, p.id FROM plain p WHERE p.id = 1", Risk.READ, ""),
    ("SELECT * FROM missing_table", Risk.UNKNOWN, "no relation"),
    ("SELECT no_such_function(1)", Risk.EXEC, ""),  # the static guard already says so
    ("WITH w AS (SELECT 1 AS id) SELECT * FROM w", Risk.READ, ""),
])
def test_resolution_sees_what_the_text_does_not_say(pg, engine, target, sql: str, risk: Risk, why: str) -> None:
    got = _resolved(engine, target, pg.writer, sql)
    assert got.risk is risk, got.reason
    assert why in got.reason


def test_verdicts_are_cached_per_target(pg, target) -> None:
    calls: list[str] = []
    resolver = CatalogResolver(ttl=60)

    def query(sql: str, params):
        calls.append(sql)
        with pg.server.admin("resolve") as conn:
            return conn.execute(sql, params).fetchall()

    statement = "SELECT s.body, upper(s.body) || 'x' FROM calm c JOIN plain s ON s.id = c.id::int"
    assert resolver.findings("resolve-pg", statement, query) == []
    first = len(calls)
    assert first > 0
    assert resolver.findings("resolve-pg", statement, query) == []
    assert len(calls) == first, "a repeated statement must not query the catalog again"
    resolver.findings("other-target", statement, query)
    assert len(calls) == 2 * first, "another target has its own catalog"


def test_a_write_that_replaces_a_view_is_judged_by_the_new_definition_at_once(pg, target) -> None:
    """Verdicts are cached for a minute; an (approved) write through the engine that replaces a
    view must not leave the old verdict behind: the next read of the view is resolved anew."""
    from broker.targets import ExecutionLimits

    with pg.server.admin("resolve") as db:
        db.execute("GRANT CREATE ON SCHEMA public TO writer")
    engine = create_engine("postgres")
    limits = ExecutionLimits(max_rows=10, max_bytes=10_000, timeout_ms=3000)
    try:
        engine.execute(target, Command("sql", sql="CREATE VIEW turncoat AS SELECT true AS id"), pg.writer, limits,
                       read_only=False)
        assert _resolved(engine, target, pg.writer, "SELECT * FROM turncoat").risk is Risk.READ
        replace = "CREATE OR REPLACE VIEW turncoat AS SELECT lockit(1) AS id"
        engine.execute(target, Command("sql", sql=replace), pg.writer, limits, read_only=False)
        got = _resolved(engine, target, pg.writer, "SELECT * FROM turncoat")
        assert got.risk is Risk.EXEC and "lockit" in got.reason
    finally:
        engine.execute(target, Command("sql", sql="DROP VIEW IF EXISTS turncoat"), pg.writer, limits,
                       read_only=False)
        engine.close()
        with pg.server.admin("resolve") as db:
            db.execute("REVOKE CREATE ON SCHEMA public FROM writer")
