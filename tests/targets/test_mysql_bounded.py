"""MySQL/MariaDB reads are bounded at the wire: a row longer than the byte cap allows is refused
by its packet header, before any of it is read, and the answer says the byte cap stopped it.

Memory is measured with ``tracemalloc`` around the engine's read (PyMySQL is pure Python: every
byte it reads is a Python allocation), so the figure is what the broker held, not the server.
"""

from __future__ import annotations

import tracemalloc

import pytest

from broker.targets import Command, ExecutionLimits
from broker.targets._mysql_wire import row_limit
from broker.targets.mysql import MySQLEngine

CAP = 100_000
LIMITS = ExecutionLimits(max_rows=100, max_bytes=CAP, timeout_ms=10_000)
BIG = 3_000_000  # under MariaDB's default 16 MB max_allowed_packet, so the server makes it


@pytest.fixture(scope="module")
def engine():
    engine = MySQLEngine(pool_max_size=1)
    yield engine
    engine.close()


def read(engine, maria, sql, limits=LIMITS):
    return engine.execute(maria.target, Command("sql", sql=sql), maria.reader, limits, read_only=True)


def peak(run):
    tracemalloc.start()
    try:
        answer = run()
        return answer, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("sql", [
    f"SELECT REPEAT('x', {BIG}) AS big",
    f"select repeat('x', {BIG}) big;",
    f"SELECT REPEAT('é', {BIG // 2}) AS big -- ) comment",  # bytes, not characters
    f"SELECT UNHEX(REPEAT('ab', {BIG})) AS big",  # binary
    f"SELECT CAST(REPEAT('x', {BIG}) AS BINARY) AS big",
    f"SELECT JSON_ARRAY(REPEAT('x', {BIG})) AS big",
    f"SELECT * FROM (SELECT REPEAT('x', {BIG}) AS big) AS q",
    f"WITH t AS (SELECT REPEAT('x', {BIG}) AS v) SELECT v FROM t",
    f"SELECT IF(SYSDATE(6) > '2000-01-01', REPEAT('x', {BIG}), 'small') AS big",  # non-deterministic
    f"SELECT CONCAT_WS(',', {', '.join([f'REPEAT(CHAR(97 + {i}), 40000)' for i in range(8)])}) AS big",
])
def test_an_oversized_row_is_refused_before_it_is_read(maria, engine, sql):
    result, held = peak(lambda: read(engine, maria, sql))
    assert result.rows == [] and result.truncated and result.truncated_by == "max_bytes"
    assert [c.name for c in result.columns] in (["big"], ["v"])
    assert held < 2 * CAP, f"held {held} bytes for a row over {BIG} bytes"


def test_rows_before_the_oversized_one_are_kept(maria, engine):
    sql = (f"SELECT 1 AS n, 'a' AS v UNION ALL SELECT 2, REPEAT('x', 50000) "
           f"UNION ALL SELECT 3, REPEAT('y', {BIG}) UNION ALL SELECT 4, 'd'")
    result = read(engine, maria, sql)
    assert [r[0] for r in result.rows] == [1, 2] and result.rows[1][1] == "x" * 50000
    assert result.truncated_by == "max_bytes"


def test_a_row_of_many_cells_that_each_fit_but_together_do_not_is_refused(maria, engine):
    parts = ", ".join(f"REPEAT('{c}', 40000) AS {c}" for c in "abcdefgh")  # 320 kB in a 100 kB cap
    result, held = peak(lambda: read(engine, maria, f"SELECT 7 AS id, {parts}"))
    assert result.rows == [] and result.truncated_by == "max_bytes" and held < 2 * CAP


def test_a_row_that_fits_is_sent_whole_and_the_engine_reads_on_after_a_refusal(maria, engine):
    read(engine, maria, f"SELECT REPEAT('x', {BIG})")  # closes its connection (the row is still on the wire)
    result = read(engine, maria, "SELECT REPEAT('y', 99000) AS v, UNHEX('00ff') AS b, 42 AS n")
    assert result.rows == [["y" * 99000, "AP8=", 42]] and not result.truncated
    assert read(engine, maria, "SELECT id FROM orders ORDER BY id").rows == [[1], [2], [3]]


def test_the_wire_limit_is_never_below_a_row_that_fits():
    assert row_limit(CAP, 1) >= CAP + 9 and row_limit(CAP, 40) >= CAP + 40 * 9


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


def test_a_200_mb_cell_costs_the_broker_less_than_the_cap(maria, packets_of_256_mb):
    sql = "SELECT 1 AS id, REPEAT('0123456789abcdef', 12500000) AS big"  # 200 MB
    result, held = peak(lambda: read(packets_of_256_mb, maria, sql, ExecutionLimits(max_bytes=CAP, timeout_ms=30_000)))
    assert result.rows == [] and result.truncated_by == "max_bytes"
    assert held < 2 * CAP, f"held {held} bytes"


def _bytes_sent(maria) -> int:
    with maria.server.admin() as admin, admin.cursor() as cur:
        cur.execute("SHOW GLOBAL STATUS LIKE 'Bytes_sent'")
        return int(cur.fetchone()[1])


@pytest.mark.parametrize("limits", [ExecutionLimits(max_rows=1, max_bytes=10_000_000, timeout_ms=20_000),
                                    ExecutionLimits(max_rows=100, max_bytes=1_000_000, timeout_ms=20_000)])
def test_a_capped_read_drops_the_rest_of_the_result_instead_of_reading_it(maria, engine, limits):
    before = _bytes_sent(maria)
    result = read(engine, maria, "SELECT seq, REPEAT('y', 900000) FROM seq_1_to_400", limits)  # 360 MB
    assert result.row_count == 1 and result.truncated
    assert _bytes_sent(maria) - before < 60_000_000, "the server sent the whole result: it was read to the end"
