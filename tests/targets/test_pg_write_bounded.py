"""PostgreSQL writes that return rows are bounded at the wire like reads, and still run exactly once.

Each statement changes a row and returns a value far over the byte cap; the value is withheld by
the server (``null`` in ``rows``, listed in ``cut_cells``), the change is committed once, and the
status says what the statement itself would say (``UPDATE 1``).
"""

from __future__ import annotations

import pytest

from broker.problems import BadRequest, CommandFailed, Conflict
from broker.targets import Command, ExecutionLimits
from broker.targets._pg_write import hoisted
from broker.targets.base import CutCell, ImpactBound
from broker.targets.postgres import PostgresEngine

CAP = 100_000
LIMITS = ExecutionLimits(max_rows=100, max_bytes=CAP, timeout_ms=10_000)
BIG = 3_000_000
X = f"repeat('x', {BIG})"


@pytest.fixture(scope="module")
def db(pg):
    with pg.server.admin("demo") as admin:
        for sql in [
            "DROP TABLE IF EXISTS wb, wb_after CASCADE",
            "CREATE TABLE wb (id int PRIMARY KEY, n int NOT NULL DEFAULT 0, body text)",
            "CREATE TABLE wb_after (id int PRIMARY KEY, v int)",
            "INSERT INTO wb_after VALUES (1, 0)",
            "CREATE FUNCTION wb_refuse() RETURNS trigger LANGUAGE plpgsql AS "
            "$$BEGIN RAISE EXCEPTION 'refused after the rows'; END$$",
            "CREATE TRIGGER wb_refuse AFTER UPDATE ON wb_after FOR EACH STATEMENT EXECUTE FUNCTION wb_refuse()",
            "CREATE OR REPLACE PROCEDURE wb_out(INOUT v text) LANGUAGE plpgsql AS "
            f"$$BEGIN UPDATE wb SET n = n + 1 WHERE id = 1; v := {X}; END$$",
            "CREATE OR REPLACE PROCEDURE wb_out_int(INOUT v int) LANGUAGE plpgsql AS $$BEGIN v := 7; END$$",
            "GRANT ALL ON ALL TABLES IN SCHEMA public TO writer",
            "GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO writer",
        ]:
            admin.execute(sql)
    return pg


@pytest.fixture()
def rows(db):
    """Five rows, n = 0 (fresh for each test)."""
    with db.server.admin("demo") as admin:
        admin.execute("TRUNCATE wb")
        admin.execute("INSERT INTO wb (id) SELECT g FROM generate_series(1, 5) g")
    return db


@pytest.fixture(scope="module")
def engine():
    engine = PostgresEngine(pool_max_size=1)
    yield engine
    engine.close()


def write(engine, db, sql, limits=LIMITS):
    return engine.execute(db.target, Command("sql", sql=sql), db.writer, limits, read_only=False)


def ns(db) -> list[int]:
    with db.server.admin("demo") as admin:
        return [r[0] for r in admin.execute("SELECT n FROM wb ORDER BY id").fetchall()]


@pytest.mark.parametrize("sql, status", [
    (f"UPDATE wb SET n = n + 1 WHERE id = 1 RETURNING {X} AS big", "UPDATE 1"),
    (f"update wb set n = n + 1 where id = 1 returning {X} big;", "UPDATE 1"),
    (f"/* ) */ UPDATE wb SET n = n + 1 WHERE id = 1 RETURNING {X} -- a comment )", "UPDATE 1"),
    (f"UPDATE wb SET n = n + 1, body = {X} WHERE id = 1 RETURNING body", "UPDATE 1"),
    (f"UPDATE wb SET n = n + 1 WHERE id = 1 RETURNING convert_to({X}, 'UTF8')", "UPDATE 1"),
    (f"UPDATE wb SET n = n + 1 WHERE id = 1 RETURNING to_jsonb({X})", "UPDATE 1"),
    (f"UPDATE wb SET n = n + 1 WHERE id = 1 RETURNING ROW(id, {X})", "UPDATE 1"),
    (f"UPDATE wb SET n = n + 1, body = pg_catalog.{X} WHERE id = 1 RETURNING new.body", "UPDATE 1"),
    (f"UPDATE wb SET n = n + 1, body = {X} WHERE id = 1 RETURNING WITH (NEW AS nw) nw.body", "UPDATE 1"),
    (f"WITH x AS (SELECT 1 AS v) UPDATE wb SET n = n + x.v FROM x WHERE id = 1 RETURNING {X}", "UPDATE 1"),
    (f"WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 1) "
     f"UPDATE wb SET n = n + 1 FROM r WHERE wb.id = r.i RETURNING {X}", "UPDATE 1"),
    (f"WITH d AS (UPDATE wb SET n = n + 1 WHERE id = 1 RETURNING id) SELECT {X} FROM d", "SELECT 1"),
    (f"WITH d AS (UPDATE wb SET n = n + 1 WHERE id = 1 RETURNING id), e AS (SELECT 2 AS id) "
     f"UPDATE wb SET body = 'b' FROM e WHERE wb.id = e.id RETURNING (SELECT {X} FROM d)", "UPDATE 1"),
    (f"WITH d AS (UPDATE wb SET n = n + 1 WHERE id = 1 RETURNING {X} AS v) (SELECT v FROM d)", "SELECT 1"),
    (f"MERGE INTO wb USING (VALUES (1)) AS s(id) ON wb.id = s.id WHEN MATCHED THEN UPDATE SET n = wb.n + 1 "
     f"RETURNING {X}", "MERGE 1"),
])
def test_an_oversized_returned_cell_is_withheld_and_the_write_runs_once(rows, engine, sql, status):
    result = write(engine, rows, sql)
    assert result.rows == [[None]]
    assert result.cut_cells == [CutCell(row=0, column=0, bytes=result.cut_cells[0].bytes)]
    assert result.cut_cells[0].bytes >= BIG
    assert result.truncated_by == "max_bytes" and result.bytes < CAP
    assert result.status == status
    assert ns(rows) == [1, 0, 0, 0, 0]  # committed, exactly once


def test_many_rows_stop_at_max_rows_and_every_row_is_still_changed(rows, engine):
    result = write(engine, rows, f"UPDATE wb SET n = n + 1 RETURNING id, {X} AS big, 'small' AS tag",
                   ExecutionLimits(max_rows=2, max_bytes=CAP, timeout_ms=10_000))
    assert [c.name for c in result.columns] == ["id", "big", "tag"]
    assert len(result.rows) == 2 and all(r[1] is None and r[2] == "small" for r in result.rows)
    assert [c.column for c in result.cut_cells] == [1, 1]
    assert result.truncated_by == "max_rows" and result.status == "UPDATE 5"
    assert ns(rows) == [1, 1, 1, 1, 1]


def test_rows_that_fit_are_sent_whole_and_stop_at_the_byte_cap(rows, engine):
    result = write(engine, rows, "UPDATE wb SET n = n + 1 RETURNING id, repeat('y', 30000) AS v")
    assert len(result.rows) == 3 and result.rows[0][1] == "y" * 30000 and not result.cut_cells
    assert result.truncated_by == "max_bytes" and result.status == "UPDATE 5"
    assert ns(rows) == [1, 1, 1, 1, 1]


def test_insert_and_delete_say_their_own_counts(rows, engine):
    inserted = write(engine, rows, f"INSERT INTO wb (id, body) SELECT g, {X} FROM generate_series(6, 8) g "
                                   "RETURNING id, body")
    assert inserted.status == "INSERT 0 3" and [r[0] for r in inserted.rows] == [6, 7, 8]
    assert len(inserted.cut_cells) == 3
    skipped = write(engine, rows, "INSERT INTO wb (id) VALUES (8), (9) ON CONFLICT DO NOTHING RETURNING *")
    assert skipped.status == "INSERT 0 1" and skipped.rows == [[9, 0, None]] and not skipped.truncated
    deleted = write(engine, rows, "DELETE FROM wb WHERE id > 5 RETURNING *, repeat(body, 2) AS twice")
    assert deleted.status == "DELETE 4" and len(deleted.rows) == 4
    assert len(ns(rows)) == 5


def test_fixed_size_columns_and_no_rows(rows, engine):
    result = write(engine, rows, "UPDATE wb SET n = n + 1 RETURNING id",
                   ExecutionLimits(max_rows=2, max_bytes=CAP, timeout_ms=10_000))
    assert result.rows == [[1], [2]] and result.status == "UPDATE 5" and result.truncated_by == "max_rows"
    none = write(engine, rows, f"UPDATE wb SET n = n + 1 WHERE id = 99 RETURNING {X}")
    assert none.rows == [] and none.status == "UPDATE 0" and not none.truncated
    plain = write(engine, rows, "UPDATE wb SET n = n + 1 WHERE id <= 2")
    assert plain.status == "UPDATE 2" and plain.affected == 2
    assert ns(rows) == [2, 2, 1, 1, 1]


def test_a_select_with_side_effects_runs_for_every_row(rows, engine):
    with rows.server.admin("demo") as admin:
        admin.execute("SELECT setval('order_ids', 100)")
    try:
        result = write(engine, rows, f"SELECT nextval('order_ids') AS id, {X} AS big FROM generate_series(1, 5)",
                       ExecutionLimits(max_rows=2, max_bytes=CAP, timeout_ms=10_000))
        assert [r[0] for r in result.rows] == [101, 102] and result.status == "SELECT 5"
        with rows.server.admin("demo") as admin:
            assert admin.execute("SELECT last_value FROM order_ids").fetchone()[0] == 105
    finally:  # the sequence is shared: the second wall's tests check it was never moved
        with rows.server.admin("demo") as admin:
            admin.execute("SELECT setval('order_ids', 1, false)")


def test_an_error_after_the_rows_fails_the_write_and_nothing_is_committed(rows, engine):
    with pytest.raises(CommandFailed) as caught:
        write(engine, rows, f"UPDATE wb_after SET v = v + 1 RETURNING {X}")
    assert "refused after the rows" in caught.value.detail
    with rows.server.admin("demo") as admin:
        assert admin.execute("SELECT v FROM wb_after").fetchone()[0] == 0


def test_a_call_returning_a_value_it_cannot_bound_is_refused_before_it_runs(rows, engine):
    with pytest.raises(BadRequest) as caught:
        write(engine, rows, "CALL wb_out(NULL)")
    assert caught.value.code == "unsupported_command"
    assert ns(rows) == [0, 0, 0, 0, 0]
    assert write(engine, rows, "CALL wb_out_int(NULL)").rows == [[7]]
    plan = write(engine, rows, f"EXPLAIN ANALYZE UPDATE wb SET n = n + 1 WHERE id = 1 RETURNING {X}")
    assert plan.rows and plan.columns[0].name == "QUERY PLAN" and ns(rows) == [1, 0, 0, 0, 0]


def test_the_trial_samples_within_the_cap_and_the_bound_run_keeps_working(rows, engine):
    sql = f"UPDATE wb SET n = n + 1 WHERE id <= 2 RETURNING id, {X} AS big"
    impact = engine.measure_impact(rows.target, Command("sql", sql=sql), rows.writer, LIMITS, sample_rows=5)
    assert impact.measured and impact.rows == 2
    assert impact.sample.rows == [[1, None], [2, None]] and len(impact.sample.cut_cells) == 2
    appended = engine.measure_impact(rows.target, Command("sql", sql=f"UPDATE wb SET body = {X} WHERE id = 1"),
                                     rows.writer, LIMITS, sample_rows=5)
    assert appended.rows == 1 and appended.sample.rows == [[1, 0, None]]  # RETURNING * added by the trial
    assert ns(rows) == [0, 0, 0, 0, 0]  # the trial rolled back
    with pytest.raises(Conflict):
        engine.execute_bounded(rows.target, Command("sql", sql=sql), rows.writer, LIMITS, ImpactBound(rows=1))
    assert ns(rows) == [0, 0, 0, 0, 0]
    done = engine.execute_bounded(rows.target, Command("sql", sql=sql), rows.writer, LIMITS,
                                  ImpactBound(rows=2, tables={"wb": 2}))
    assert done.status == "UPDATE 2" and done.rows == [[1, None], [2, None]]
    assert ns(rows) == [1, 1, 0, 0, 0]


@pytest.mark.parametrize("sql", [
    "WITH a AS (SELECT 1) UPDATE t SET x = 1 RETURNING *",
    "WITH RECURSIVE a(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM a WHERE i < 3) SELECT * FROM a",
    "WITH a AS (SELECT ')') , b AS MATERIALIZED (DELETE FROM t RETURNING *) -- (\n(SELECT * FROM b)",
    "WITH a AS (SELECT 1) SEARCH DEPTH FIRST BY x SET o SELECT * FROM a",
    "WITH \"select\" AS (SELECT 1) SELECT * FROM \"select\"",
])
def test_the_hoisted_form_keeps_the_statement_whole(sql):
    import pglast
    kind = type(pglast.parse_sql(sql)[0].stmt).__name__
    text = hoisted(sql, kind, 1)
    assert text is not None and text.count("_broker_w(c0) AS MATERIALIZED") == 1
