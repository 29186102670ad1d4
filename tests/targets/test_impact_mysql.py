"""Measured impact on real MariaDB: the trial counts rows for the statement and its table, changes
nothing, refuses what a rollback cannot undo (triggers, MyISAM, AUTO_INCREMENT, views), and the bound
run commits only within what was measured."""

from __future__ import annotations

import pytest

from broker.problems import Conflict
from broker.targets import Command, ExecutionLimits
from broker.targets.base import ImpactBound, ImpactTrial
from broker.targets.mysql import MySQLEngine

LIMITS = ExecutionLimits(max_rows=100, max_bytes=100_000, timeout_ms=3000)


@pytest.fixture(scope="module")
def tables(maria):
    with maria.server.admin() as admin, admin.cursor() as cur:
        for sql in [
            "DROP TABLE IF EXISTS demo.imp_lines, demo.imp_items, demo.imp_archive, demo.imp_auto, demo.imp_myisam, "
            "demo.imp_audited",
            "DROP VIEW IF EXISTS demo.imp_view",
            "CREATE TABLE demo.imp_items (id INT PRIMARY KEY, grp VARCHAR(4), price INT) ENGINE=InnoDB",
            "INSERT INTO demo.imp_items SELECT seq, IF(seq <= 10, 'a', 'b'), seq FROM demo.seq_1_to_40",
            "CREATE TABLE demo.imp_lines (id INT PRIMARY KEY, item INT, "
            "FOREIGN KEY (item) REFERENCES demo.imp_items(id) ON DELETE CASCADE) ENGINE=InnoDB",
            "INSERT INTO demo.imp_lines SELECT seq, seq FROM demo.seq_1_to_40",
            "CREATE TABLE demo.imp_archive (id INT, grp VARCHAR(4), price INT) ENGINE=InnoDB",
            "CREATE TABLE demo.imp_auto (id INT AUTO_INCREMENT PRIMARY KEY, v INT) ENGINE=InnoDB",
            "CREATE TABLE demo.imp_myisam (id INT PRIMARY KEY, v INT) ENGINE=MyISAM",
            "INSERT INTO demo.imp_myisam VALUES (1, 1)",
            "CREATE TABLE demo.imp_audited (id INT PRIMARY KEY, v INT) ENGINE=InnoDB",
            "INSERT INTO demo.imp_audited VALUES (1, 1)",
            "CREATE TRIGGER demo.imp_audit BEFORE UPDATE ON demo.imp_audited FOR EACH ROW SET NEW.v = NEW.v + 1",
            "CREATE VIEW demo.imp_view AS SELECT * FROM demo.imp_items",
            "DROP TABLE IF EXISTS demo.imp_seqd",
            "DROP SEQUENCE IF EXISTS demo.imp_seq",
            "CREATE SEQUENCE demo.imp_seq NOCACHE",
            "CREATE TABLE demo.imp_seqd (id INT DEFAULT NEXTVAL(demo.imp_seq), v INT) ENGINE=InnoDB",
            "INSERT INTO demo.imp_seqd (id, v) VALUES (0, 1)",
        ]:
            cur.execute(sql)
    return maria


@pytest.fixture()
def engine():
    engine = MySQLEngine(pool_max_size=1)
    yield engine
    engine.close()


def measure(engine, db, sql):
    return engine.measure_impact(db.target, Command("sql", sql=sql), db.writer, LIMITS, sample_rows=5)


def value(engine, db, sql):
    return engine.execute(db.target, Command("sql", sql=sql), db.writer, LIMITS, read_only=True).rows[0][0]


def test_the_engine_declares_the_capability(engine):
    assert isinstance(engine, ImpactTrial)


def test_an_update_is_counted_and_changes_nothing(tables, engine):
    impact = measure(engine, tables, "UPDATE imp_items SET price = price + 1000 WHERE grp = 'a'")
    assert impact.measured and impact.rows == 10
    [items] = impact.tables
    assert (items.table, items.updated, items.total, items.total_exact) == ("demo.imp_items", 10, 40, True)
    assert str(value(engine, tables, "SELECT SUM(price) FROM imp_items")) == str(sum(range(1, 41)))


def test_a_delete_names_the_tables_its_cascade_reaches(tables, engine):
    impact = measure(engine, tables, "DELETE FROM imp_items WHERE id <= 3")
    assert impact.rows == 3 and impact.tables[0].deleted == 3
    assert any("demo.imp_lines" in note for note in impact.notes)
    assert value(engine, tables, "SELECT COUNT(*) FROM imp_lines") == 40


def test_an_insert_select_is_counted(tables, engine):
    impact = measure(engine, tables, "INSERT INTO imp_archive SELECT * FROM imp_items WHERE grp = 'b'")
    assert impact.rows == 30
    assert [(t.table, t.inserted, t.total) for t in impact.tables] == [("demo.imp_archive", 30, 0)]
    assert value(engine, tables, "SELECT COUNT(*) FROM imp_archive") == 0


@pytest.mark.parametrize(("sql", "why"), [
    ("INSERT INTO imp_auto (v) VALUES (1)", "AUTO_INCREMENT"),
    ("UPDATE imp_myisam SET v = 2 WHERE id = 1", "MyISAM"),
    ("INSERT INTO imp_archive SELECT id, 'x', v FROM imp_myisam", "MyISAM"),
    ("UPDATE imp_audited SET v = 5 WHERE id = 1", "trigger"),
    ("UPDATE `imp_audited` SET v = 5 WHERE id = 1", "trigger"),
    ("UPDATE imp_view SET price = 0 WHERE id = 1", "not a table"),
    ("SELECT 1", "does not change rows"),
    # a sequence default (MariaDB 10.3+) is drawn like AUTO_INCREMENT and not given back
    ("INSERT INTO imp_seqd (v) VALUES (2)", "sequence"),
    ("INSERT INTO imp_seqd (v) SELECT price FROM imp_items", "sequence"),
    ("UPDATE imp_seqd SET id = DEFAULT WHERE v = 1", "sequence"),
    # DDL commits implicitly on MySQL/MariaDB: it is never tried
    ("ALTER TABLE imp_items ADD COLUMN z INT", "does not change rows"),
    ("CREATE TABLE imp_new AS SELECT * FROM imp_items", "does not change rows"),
    ("TRUNCATE TABLE imp_archive", "does not change rows"),
    ("INSERT INTO imp_archive VALUES (1, 'a', 1); DROP TABLE imp_archive", "does not change rows"),
])
def test_a_trial_that_a_rollback_cannot_undo_is_refused(tables, engine, sql, why):
    drawn = "SELECT next_not_cached_value FROM imp_seq"
    before = value(engine, tables, drawn)
    impact = measure(engine, tables, sql)
    assert value(engine, tables, drawn) == before
    assert value(engine, tables, "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'demo' "
                                 "AND TABLE_NAME = 'imp_items' AND COLUMN_NAME = 'z'") == 0
    assert not impact.measured and why in impact.reason
    assert value(engine, tables, "SELECT v FROM imp_myisam WHERE id = 1") == 1
    assert value(engine, tables, "SELECT v FROM imp_audited WHERE id = 1") == 1


def test_a_statement_that_fails_in_the_trial_says_so(tables, engine):
    impact = measure(engine, tables, "UPDATE imp_items SET grp = 'too long' WHERE id = 2")
    assert not impact.measured and impact.error_code == "1406" and "too long" in impact.error


def test_the_bound_run_commits_within_and_rolls_back_past_it(tables, engine):
    sql = Command("sql", sql="UPDATE imp_items SET price = price + 1 WHERE grp = 'a'")
    with pytest.raises(Conflict) as err:
        engine.execute_bounded(tables.target, sql, tables.writer, LIMITS,
                               ImpactBound(rows=9, tables={"demo.imp_items": 9}))
    assert err.value.code == "impact_exceeded"
    assert str(value(engine, tables, "SELECT SUM(price) FROM imp_items WHERE grp = 'a'")) == "55"
    with pytest.raises(Conflict):
        engine.execute_bounded(tables.target, sql, tables.writer, LIMITS, ImpactBound(max_rows_changed=3))
    done = engine.execute_bounded(tables.target, sql, tables.writer, LIMITS,
                                  ImpactBound(rows=10, tables={"demo.imp_items": 10}))
    assert done.affected == 10
    assert str(value(engine, tables, "SELECT SUM(price) FROM imp_items WHERE grp = 'a'")) == "65"


def test_a_trial_waits_no_longer_than_its_lock_timeout(tables, engine):
    with tables.server.admin() as other, other.cursor() as cur:
        cur.execute("START TRANSACTION")
        cur.execute("SELECT * FROM demo.imp_items WHERE id = 40 FOR UPDATE")
        held = Command("sql", sql="UPDATE imp_items SET price = 0 WHERE id = 40")
        impact = engine.measure_impact(tables.target, held, tables.writer, ExecutionLimits(timeout_ms=1000),
                                       sample_rows=1)
        cur.execute("ROLLBACK")
    assert not impact.measured and impact.error and impact.rows is None, impact
    assert str(value(engine, tables, "SELECT price FROM imp_items WHERE id = 40")) == "40"
