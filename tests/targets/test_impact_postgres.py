"""Measured impact on real PostgreSQL: the trial counts rows per statement and per table (cascades
too), samples the changed rows, changes nothing, refuses what a rollback cannot undo, and the bound
run commits only within what was measured."""

from __future__ import annotations

import pytest

from broker.problems import Conflict
from broker.targets import Command, ExecutionLimits
from broker.targets.base import ImpactBound, ImpactTrial
from broker.targets.postgres import PostgresEngine

LIMITS = ExecutionLimits(max_rows=100, max_bytes=100_000, timeout_ms=3000)


@pytest.fixture(scope="module")
def tables(pg):
    with pg.server.admin("demo") as db:
        for sql in [
            "DROP TABLE IF EXISTS imp_lines, imp_items, imp_archive, imp_serial, imp_audited, imp_audit_log CASCADE",
            "CREATE TABLE imp_items (id int PRIMARY KEY, grp text, price int)",
            "INSERT INTO imp_items SELECT g, CASE WHEN g <= 10 THEN 'a' ELSE 'b' END, g FROM generate_series(1, 40) g",
            "CREATE TABLE imp_lines (id int PRIMARY KEY, item int REFERENCES imp_items(id) ON DELETE CASCADE)",
            "INSERT INTO imp_lines SELECT g, g FROM generate_series(1, 40) g",
            "CREATE TABLE imp_archive (id int, grp text, price int)",
            "CREATE TABLE imp_serial (id serial PRIMARY KEY, v int)",
            "CREATE TABLE imp_audited (id int PRIMARY KEY, v int)",
            "INSERT INTO imp_audited VALUES (1, 1)",
            "CREATE TABLE imp_audit_log (v int)",
            "CREATE FUNCTION imp_log() RETURNS trigger LANGUAGE plpgsql AS "
            "$$BEGIN INSERT INTO imp_audit_log VALUES (NEW.v); RETURN NEW; END$$",
            "CREATE TRIGGER imp_audit AFTER UPDATE ON imp_audited FOR EACH ROW EXECUTE FUNCTION imp_log()",
            "CREATE VIEW imp_view AS SELECT * FROM imp_items",
            # user code a write runs without a trigger: in a check, an index expression, a policy, a default
            "DROP TABLE IF EXISTS imp_checked, imp_indexed, imp_policed, imp_defaulted, imp_stamped CASCADE",
            "DROP FUNCTION IF EXISTS imp_side(int), imp_side_default() CASCADE",
            "DROP SEQUENCE IF EXISTS imp_side_seq",
            "CREATE SEQUENCE imp_side_seq",
            "CREATE FUNCTION imp_side(v int) RETURNS bool LANGUAGE plpgsql IMMUTABLE AS "
            "$$BEGIN PERFORM nextval('imp_side_seq'); RETURN v IS NOT NULL; END$$",
            "CREATE FUNCTION imp_side_default() RETURNS int LANGUAGE sql AS $$SELECT nextval('imp_side_seq')::int$$",
            "CREATE TABLE imp_checked (id int PRIMARY KEY, v int CHECK (imp_side(v)))",
            "CREATE TABLE imp_indexed (id int PRIMARY KEY, v int)",
            "CREATE INDEX imp_indexed_side ON imp_indexed ((imp_side(v)))",
            "CREATE TABLE imp_policed (id int PRIMARY KEY, v int)",
            "ALTER TABLE imp_policed ENABLE ROW LEVEL SECURITY",
            "CREATE POLICY imp_policed_side ON imp_policed USING (imp_side(v))",
            "CREATE TABLE imp_defaulted (id int, v int DEFAULT imp_side_default())",
            "CREATE TABLE imp_stamped (id int, at timestamptz DEFAULT now(), u uuid DEFAULT gen_random_uuid())",
            # a child that its foreign key sets to DEFAULT (a sequence draw) when the parent row goes
            "DROP TABLE IF EXISTS imp_parent, imp_child CASCADE",
            "CREATE TABLE imp_parent (id int PRIMARY KEY)", "INSERT INTO imp_parent VALUES (1), (2)",
            "CREATE TABLE imp_child (id int, parent int DEFAULT nextval('imp_side_seq') "
            "REFERENCES imp_parent ON DELETE SET DEFAULT ON UPDATE SET DEFAULT)",
            "INSERT INTO imp_child VALUES (1, 1)",
            "INSERT INTO imp_checked VALUES (1, 1)", "INSERT INTO imp_indexed VALUES (1, 1)",
            "INSERT INTO imp_policed VALUES (1, 1)", "INSERT INTO imp_defaulted VALUES (1, 1)",
            "GRANT USAGE ON SEQUENCE imp_side_seq TO writer",
            "GRANT ALL ON ALL TABLES IN SCHEMA public TO writer",
            "GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO writer",
        ]:
            db.execute(sql)
    return pg


@pytest.fixture()
def engine():
    engine = PostgresEngine(pool_max_size=1)
    yield engine
    engine.close()


def measure(engine, db, sql, sample_rows=5):
    return engine.measure_impact(db.target, Command("sql", sql=sql), db.writer, LIMITS, sample_rows=sample_rows)


def count(engine, db, sql):
    return engine.execute(db.target, Command("sql", sql=sql), db.writer, LIMITS, read_only=True).rows[0][0]


def test_the_engine_declares_the_capability(engine):
    assert isinstance(engine, ImpactTrial)


def test_an_update_is_counted_sampled_and_changes_nothing(tables, engine):
    impact = measure(engine, tables, "UPDATE imp_items SET price = price + 1000 WHERE grp = 'a'")
    assert impact.measured and impact.rows == 10
    [items] = impact.tables
    assert (items.table, items.updated, items.changed) == ("imp_items", 10, 10)
    assert items.total == 40 and items.total_exact  # never analysed: counted inside the trial
    assert impact.sample is not None and len(impact.sample.rows) == 5
    assert [c.name for c in impact.sample.columns] == ["id", "grp", "price"]
    assert all(row[2] > 1000 for row in impact.sample.rows)  # the new values
    assert count(engine, tables, "SELECT sum(price) FROM imp_items") == sum(range(1, 41))


def test_a_delete_counts_its_cascade_per_table(tables, engine):
    impact = measure(engine, tables, "DELETE FROM imp_items WHERE id <= 3")
    assert impact.rows == 3
    assert {t.table: (t.deleted, t.total) for t in impact.tables} == {"imp_items": (3, 40), "imp_lines": (3, 40)}
    assert impact.changed == 6
    assert sorted(r[0] for r in impact.sample.rows) == [1, 2, 3]  # deleted rows as they were
    assert count(engine, tables, "SELECT count(*) FROM imp_lines") == 40


def test_an_insert_select_is_counted_and_a_statement_with_its_own_returning_keeps_it(tables, engine):
    impact = measure(engine, tables, "INSERT INTO imp_archive SELECT * FROM imp_items WHERE grp = 'b';")
    assert impact.rows == 30 and [(t.table, t.inserted) for t in impact.tables] == [("imp_archive", 30)]
    assert count(engine, tables, "SELECT count(*) FROM imp_archive") == 0
    own = measure(engine, tables, "DELETE FROM imp_items WHERE id = 7 RETURNING id -- done")
    assert own.sample.rows == [[7]] and [c.name for c in own.sample.columns] == ["id"]


@pytest.mark.parametrize(("sql", "why"), [
    ("INSERT INTO imp_serial (v) VALUES (1)", "sequence"),
    ("INSERT INTO imp_serial (v) SELECT price FROM imp_items", "sequence"),
    ("UPDATE imp_serial SET id = DEFAULT WHERE v = 1", "sequence"),
    # a data-modifying CTE writes a table of its own: its sequence is drawn as well
    ("WITH i AS (INSERT INTO imp_serial (v) VALUES (1) RETURNING id) UPDATE imp_items SET price = 0 WHERE id = 1",
     "sequence"),
    ("WITH i AS (INSERT INTO imp_serial (v) VALUES (1) RETURNING id) DELETE FROM imp_items WHERE id = 1",
     "sequence"),
    ("WITH u AS (UPDATE imp_audited SET v = 3 WHERE id = 1 RETURNING id) DELETE FROM imp_items WHERE id = 1",
     "trigger on imp_audited"),
    ("WITH u AS (UPDATE imp_view SET price = 0 WHERE id = 1 RETURNING id) DELETE FROM imp_items WHERE id = 1",
     "not a table"),
    ("UPDATE imp_audited SET v = 2 WHERE id = 1", "trigger on imp_audited"),
    ('UPDATE "imp_audited" SET v = 2 WHERE id = 1', "trigger on imp_audited"),
    ("UPDATE public.IMP_AUDITED SET v = 2 WHERE id = 1", "trigger on imp_audited"),
    ("UPDATE imp_view SET price = 0 WHERE id = 1", "not a table"),
    ("SELECT 1", "does not change rows"),
    # never tried: they cannot run in a transaction, or are not row changes
    ("VACUUM imp_items", "does not change rows"),
    ("CREATE INDEX CONCURRENTLY imp_price ON imp_items (price)", "does not change rows"),
    ("UPDATE imp_items SET price = 0 WHERE id = 1; UPDATE imp_items SET price = 0 WHERE id = 2",
     "does not change rows"),
])
def test_a_trial_that_a_rollback_cannot_undo_is_refused(tables, engine, sql, why):
    before = count(engine, tables, "SELECT last_value FROM imp_serial_id_seq")
    impact = measure(engine, tables, sql)
    assert not impact.measured and why in impact.reason and impact.rows is None
    assert count(engine, tables, "SELECT last_value FROM imp_serial_id_seq") == before
    assert count(engine, tables, "SELECT count(*) FROM imp_audit_log") == 0


def test_a_statement_that_fails_in_the_trial_says_so(tables, engine):
    impact = measure(engine, tables, "UPDATE imp_items SET id = 1 WHERE id = 2")
    assert not impact.measured and impact.error_code == "23505" and "duplicate key" in impact.error
    assert count(engine, tables, "SELECT 1") == 1  # the pooled connection is usable again


def test_a_trial_waits_no_longer_than_the_lock_timeout(tables, engine):
    with tables.server.admin("demo") as other:
        other.autocommit = False
        other.execute("SELECT * FROM imp_items WHERE id = 40 FOR UPDATE")
        held = Command("sql", sql="UPDATE imp_items SET price = 0 WHERE id = 40")
        impact = engine.measure_impact(tables.target, held, tables.writer, ExecutionLimits(timeout_ms=300),
                                       sample_rows=1)
        other.rollback()
    assert not impact.measured and "lock" in impact.error


def test_the_bound_run_commits_within_and_rolls_back_past_it(tables, engine):
    sql = Command("sql", sql="UPDATE imp_items SET price = price + 1 WHERE grp = 'a'")
    with pytest.raises(Conflict) as err:
        engine.execute_bounded(tables.target, sql, tables.writer, LIMITS, ImpactBound(rows=9, tables={"imp_items": 9}))
    assert err.value.code == "impact_exceeded" and "10 row(s)" in err.value.detail
    assert count(engine, tables, "SELECT sum(price) FROM imp_items WHERE grp = 'a'") == 55
    cascade = Command("sql", sql="DELETE FROM imp_items WHERE id = 40")
    with pytest.raises(Conflict) as err:  # the statement's own count is within; the cascade is not
        engine.execute_bounded(tables.target, cascade, tables.writer, LIMITS,
                               ImpactBound(rows=1, tables={"imp_items": 1}))
    assert "imp_lines" in err.value.detail
    with pytest.raises(Conflict) as err:
        engine.execute_bounded(tables.target, sql, tables.writer, LIMITS, ImpactBound(max_rows_changed=5))
    assert "max_rows_changed" in err.value.detail
    done = engine.execute_bounded(tables.target, sql, tables.writer, LIMITS,
                                  ImpactBound(rows=10, tables={"imp_items": 10}, max_rows_changed=10))
    assert done.affected == 10
    assert count(engine, tables, "SELECT sum(price) FROM imp_items WHERE grp = 'a'") == 65


def test_a_trigger_added_after_the_trial_cannot_write_another_table_unseen(tables, engine):
    """The trial saw no trigger; one created before the approved run writes an audit table. The bound
    counts per table what the run's transaction changed, so the run rolls back."""
    sql = "UPDATE imp_items SET price = price WHERE id = 5"
    impact = measure(engine, tables, sql)
    assert impact.measured and [t.table for t in impact.tables] == ["imp_items"]
    bound = ImpactBound(rows=impact.rows, tables={t.table: t.changed for t in impact.tables})
    with tables.server.admin("demo") as db:
        db.execute("CREATE FUNCTION imp_late_log() RETURNS trigger LANGUAGE plpgsql AS "
                   "$$BEGIN INSERT INTO imp_audit_log VALUES (NEW.price); RETURN NEW; END$$")
        db.execute("CREATE TRIGGER imp_late AFTER UPDATE ON imp_items FOR EACH ROW EXECUTE FUNCTION imp_late_log()")
    try:
        with pytest.raises(Conflict) as err:
            engine.execute_bounded(tables.target, Command("sql", sql=sql), tables.writer, LIMITS, bound)
        assert err.value.code == "impact_exceeded" and "imp_audit_log" in err.value.detail
    finally:
        with tables.server.admin("demo") as db:
            db.execute("DROP FUNCTION imp_late_log() CASCADE")
    assert count(engine, tables, "SELECT count(*) FROM imp_audit_log") == 0


@pytest.mark.parametrize(("sql", "why"), [
    ("UPDATE imp_checked SET v = 2 WHERE id = 1", "check constraint"),
    ("INSERT INTO imp_checked VALUES (2, 2)", "check constraint"),
    ("UPDATE imp_indexed SET v = 2 WHERE id = 1", "index expression"),
    ("UPDATE imp_policed SET v = 2 WHERE id = 1", "row-level security"),
    ("UPDATE imp_items SET price = 0 WHERE id IN (SELECT id FROM imp_policed)", "row-level security"),
    ("INSERT INTO imp_defaulted (id) VALUES (2)", "column default"),
    ("UPDATE imp_defaulted SET v = DEFAULT WHERE id = 1", "column default"),
])
def test_user_code_a_write_runs_without_a_trigger_refuses_the_trial(tables, engine, sql, why):
    before = count(engine, tables, "SELECT last_value FROM imp_side_seq")
    impact = measure(engine, tables, sql)
    assert not impact.measured and why in impact.reason, impact
    assert count(engine, tables, "SELECT last_value FROM imp_side_seq") == before


def test_built_in_defaults_and_a_write_that_does_not_use_them_are_measured(tables, engine):
    assert measure(engine, tables, "INSERT INTO imp_stamped (id) VALUES (1)").measured
    assert measure(engine, tables, "UPDATE imp_defaulted SET v = 5 WHERE id = 1").measured



@pytest.mark.parametrize("sql", ["DELETE FROM imp_parent WHERE id = 1", "UPDATE imp_parent SET id = 3 WHERE id = 1",
                                 'DELETE FROM "imp_parent" WHERE id = 1', "DELETE FROM public.imp_parent WHERE id < 2"])
def test_a_cascade_that_sets_a_child_to_its_sequence_default_is_not_tried(tables, engine, sql):
    """ON DELETE/UPDATE SET DEFAULT runs the child's default: a sequence draw no rollback undoes."""
    before = count(engine, tables, "SELECT last_value FROM imp_side_seq")
    impact = measure(engine, tables, sql)
    assert not impact.measured and "imp_child" in impact.reason and "sequence" in impact.reason, impact
    assert count(engine, tables, "SELECT last_value FROM imp_side_seq") == before
