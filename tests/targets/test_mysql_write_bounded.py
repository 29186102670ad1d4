"""MariaDB writes that return rows (``INSERT/DELETE/REPLACE ... RETURNING``, a SELECT on the write
path) are bounded at the wire: a row longer than the byte cap allows is read off the wire in pieces
and dropped, never held, and the write still completes and is committed (it ran: the answer says
so, with its count, and that the byte cap cut its rows).

Memory is measured with ``tracemalloc`` around the engine's call (PyMySQL is pure Python).
"""

from __future__ import annotations

import tracemalloc

import pytest

from broker.problems import Conflict
from broker.targets import Command, ExecutionLimits
from broker.targets.base import ImpactBound
from broker.targets.mysql import MySQLEngine

CAP = 100_000
LIMITS = ExecutionLimits(max_rows=100, max_bytes=CAP, timeout_ms=20_000)
BIG = 3_000_000
X = f"REPEAT('x', {BIG})"


@pytest.fixture()
def db(maria):
    """``demo.wb`` with rows 1..3 (fresh for each test)."""
    with maria.server.admin() as admin, admin.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS demo.wb")
        cur.execute("CREATE TABLE demo.wb (id INT PRIMARY KEY, n INT NOT NULL DEFAULT 0, body LONGTEXT) ENGINE=InnoDB")
        cur.execute("INSERT INTO demo.wb (id) VALUES (1), (2), (3)")
        admin.commit()
    return maria


@pytest.fixture(scope="module")
def engine():
    engine = MySQLEngine(pool_max_size=1)
    yield engine
    engine.close()


def write(engine, db, sql, limits=LIMITS):
    return engine.execute(db.target, Command("sql", sql=sql), db.writer, limits, read_only=False)


def peak(run):
    tracemalloc.start()
    try:
        answer = run()
        return answer, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def ids(db) -> list[int]:
    with db.server.admin() as admin, admin.cursor() as cur:
        cur.execute("SELECT id FROM demo.wb ORDER BY id")
        return [r[0] for r in cur.fetchall()]


@pytest.mark.parametrize("sql, count, after", [
    (f"INSERT INTO wb (id, body) VALUES (4, {X}) RETURNING body", 1, [1, 2, 3, 4]),
    (f"insert into wb values (4, 0, repeat('x', {BIG})) returning *;", 1, [1, 2, 3, 4]),
    (f"INSERT INTO wb (id) VALUES (4) RETURNING id, UNHEX(REPEAT('ab', {BIG})) AS blob_", 1, [1, 2, 3, 4]),
    (f"INSERT INTO wb (id, body) SELECT seq, {X} FROM seq_4_to_7 RETURNING id, body -- )", 4,
     [1, 2, 3, 4, 5, 6, 7]),
    (f"REPLACE INTO wb (id, body) VALUES (1, {X}) RETURNING CONCAT(body, 'z')", 1, [1, 2, 3]),  # rows returned
    (f"DELETE FROM wb WHERE id >= 2 RETURNING id, {X}", 2, [1]),
    (f"/* c */ DELETE FROM wb RETURNING JSON_ARRAY(id, {X})", 3, []),
    (f"SELECT id, {X} FROM wb FOR UPDATE", 3, [1, 2, 3]),
])
def test_an_oversized_returned_row_is_dropped_and_the_write_is_committed(db, engine, sql, count, after):
    result, held = peak(lambda: write(engine, db, sql))
    assert result.rows == [] and result.truncated and result.truncated_by == "max_bytes"
    assert result.status == f"OK {count}"
    assert held < 2 * CAP, f"held {held} bytes"
    assert ids(db) == after


def test_rows_before_the_oversized_one_are_kept_and_every_row_is_written(db, engine):
    result = write(engine, db, f"INSERT INTO wb (id, body) VALUES (4, 'a'), (5, {X}), (6, 'c') RETURNING id, body")
    assert result.rows == [[4, "a"]] and result.truncated_by == "max_bytes" and result.status == "OK 3"
    assert [c.name for c in result.columns] == ["id", "body"]
    assert ids(db) == [1, 2, 3, 4, 5, 6]
    small = write(engine, db, "DELETE FROM wb WHERE id >= 4 RETURNING id", ExecutionLimits(max_rows=2))
    assert small.rows == [[4], [5]] and small.truncated_by == "max_rows" and small.status == "OK 3"
    assert ids(db) == [1, 2, 3]
    plain = write(engine, db, "UPDATE wb SET n = n + 1")
    assert plain.status == "OK 3" and plain.affected == 3 and plain.rows == []


@pytest.fixture
def packets_of_256_mb(maria):
    """MariaDB builds no value over ``max_allowed_packet`` (16 MB by default); operators raise it."""
    with maria.server.admin() as admin, admin.cursor() as cur:
        cur.execute("SELECT @@GLOBAL.max_allowed_packet")
        before = cur.fetchone()[0]
        cur.execute("SET GLOBAL max_allowed_packet = 268435456")
    engine = MySQLEngine(pool_max_size=1)  # new sessions see the new value
    yield engine
    engine.close()
    with maria.server.admin() as admin, admin.cursor() as cur:
        cur.execute(f"SET GLOBAL max_allowed_packet = {int(before)}")


def test_a_200_mb_returned_cell_is_skipped_in_pieces_and_the_connection_stays_in_step(db, packets_of_256_mb):
    sql = ("INSERT INTO wb (id) VALUES (4), (5) "
           "RETURNING id, REPEAT('0123456789abcdef', IF(id = 4, 12500000, 1)) AS big")  # 200 MB, 16 B
    result, held = peak(lambda: write(packets_of_256_mb, db, sql, ExecutionLimits(max_bytes=CAP, timeout_ms=60_000)))
    assert result.rows == [] and result.truncated_by == "max_bytes" and result.status == "OK 2"
    assert held < 2 * CAP, f"held {held} bytes"
    assert ids(db) == [1, 2, 3, 4, 5]


def test_the_trial_counts_without_holding_the_rows_and_the_bound_run_keeps_working(db, engine):
    sql = Command("sql", sql=f"DELETE FROM wb WHERE id <= 2 RETURNING id, {X}")
    impact, held = peak(lambda: engine.measure_impact(db.target, sql, db.writer, LIMITS, sample_rows=5))
    assert impact.measured and impact.rows == 2 and held < 2 * CAP
    assert ids(db) == [1, 2, 3]  # rolled back
    with pytest.raises(Conflict):
        engine.execute_bounded(db.target, sql, db.writer, LIMITS, ImpactBound(rows=1))
    assert ids(db) == [1, 2, 3]
    done = engine.execute_bounded(db.target, sql, db.writer, LIMITS, ImpactBound(rows=2, tables={"demo.wb": 2}))
    assert done.status == "OK 2" and done.truncated_by == "max_bytes"
    assert ids(db) == [3]
