"""PostgreSQL reads are bounded at the wire: a value over the byte cap never crosses it.

Each oversized value is withheld by the server (``null`` in ``rows``, listed in ``cut_cells``
with its size), everything else arrives unchanged: names, types, order, NULLs, small values.
"""

from __future__ import annotations

import pytest

from broker.problems import CommandFailed
from broker.targets import Command, ExecutionLimits
from broker.targets._pg_wire import select_text, wrap
from broker.targets.base import CutCell
from broker.targets.postgres import PostgresEngine

CAP = 100_000
LIMITS = ExecutionLimits(max_rows=100, max_bytes=CAP, timeout_ms=10_000)
BIG = 3_000_000


@pytest.fixture(scope="module")
def engine():
    engine = PostgresEngine(pool_max_size=1)
    yield engine
    engine.close()


def read(engine, pg, sql, limits=LIMITS):
    return engine.execute(pg.target, Command("sql", sql=sql), pg.reader, limits, read_only=True)


@pytest.mark.parametrize("sql, size", [
    (f"SELECT repeat('x', {BIG}) AS big", BIG),
    (f"select REPEAT('x', {BIG}) big;", BIG),
    (f"SELECT repeat('é', {BIG // 2}) AS big -- a comment )", BIG),  # bytes, not characters
    (f"SELECT convert_to(repeat('x', {BIG}), 'UTF8') AS big", 2 * BIG + 2),  # bytea's hex text form
    (f"SELECT to_jsonb(repeat('x', {BIG})) AS big", BIG + 2),
    ("SELECT decode(repeat('ab', 50001), 'hex') AS big", 100_004),  # just over: its hex form is what is sent
    (f"SELECT to_json(repeat('x', {BIG})) AS big", BIG + 2),
    (f"SELECT repeat('x', {BIG})::varchar AS big", BIG),
    (f"SELECT repeat('x', {BIG})::char({BIG}) AS big", BIG),
    (f"SELECT ROW(1, repeat('x', {BIG})) AS big", BIG + 4),
    ("SELECT repeat('9', 131072)::numeric AS big", 131072),  # numeric's largest, over the cap
    (f"SELECT array_fill(1, ARRAY[{BIG // 2}]) AS big", BIG + 1),
    (f"WITH t AS (SELECT repeat('x', {BIG}) AS v) SELECT v AS big FROM t", BIG),
    (f"VALUES (repeat('x', {BIG}))", BIG),
    (f"SELECT * FROM (SELECT repeat('x', {BIG}) AS big) AS q", BIG),
])
def test_an_oversized_cell_is_withheld_by_the_server_and_marked(pg, engine, sql, size):
    result = read(engine, pg, sql)
    assert result.rows == [[None]]
    assert result.cut_cells == [CutCell(row=0, column=0, bytes=size)]
    assert result.truncated and result.truncated_by == "max_bytes"
    assert result.bytes < CAP


def test_names_types_order_and_small_values_are_unchanged(pg, engine):
    sql = (f"SELECT g AS id, 'row ' || g AS label, CASE WHEN g = 2 THEN repeat('x', {BIG}) END AS body, "
           "NULL::text AS nothing, now()::date AS day, 'x' AS label FROM generate_series(1, 3) AS g ORDER BY g DESC")
    result = read(engine, pg, sql)
    assert [(c.name, c.type) for c in result.columns] == [
        ("id", "int4"), ("label", "text"), ("body", "text"), ("nothing", "text"), ("day", "date"), ("label", "text")]
    assert [r[:2] for r in result.rows] == [[3, "row 3"], [2, "row 2"], [1, "row 1"]]
    assert [r[2] for r in result.rows] == [None, None, None]  # row 2's is withheld, the others are NULL
    assert result.cut_cells == [CutCell(row=1, column=2, bytes=BIG)]
    assert all(r[5] == "x" for r in result.rows)


def test_a_row_of_many_cells_that_each_fit_but_together_do_not_is_bounded(pg, engine):
    parts = ", ".join(f"repeat('{c}', 40000) AS {c}" for c in "abcdefgh")  # 320 kB in a 100 kB cap
    result = read(engine, pg, f"SELECT 7 AS id, 'small' AS tag, {parts}")
    assert result.rows[0][:2] == [7, "small"]
    assert [c.column for c in result.cut_cells] == list(range(2, 10))
    assert result.bytes < CAP


def test_a_result_of_many_rows_just_under_the_cap_stops_at_the_cap(pg, engine):
    result = read(engine, pg, "SELECT g, repeat('x', 30000) FROM generate_series(1, 1000) AS g")
    assert result.truncated_by == "max_bytes" and result.row_count == 3 and not result.cut_cells


def test_a_value_that_fits_is_sent_whole(pg, engine):
    result = read(engine, pg, "SELECT repeat('y', 90000) AS v, decode('00ff', 'hex') AS b, '{\"a\": 1}'::jsonb AS j")
    assert result.rows == [["y" * 90000, "AP8=", {"a": 1}]] and not result.truncated and not result.cut_cells
    just_under = read(engine, pg, "SELECT decode(repeat('ab', 49000), 'hex') AS b")
    assert len(just_under.rows[0][0]) == 65336 and not just_under.cut_cells  # 49000 bytes, in base64


@pytest.mark.parametrize("sql, rows", [
    ("SELECT 1 AS a -- )", [[1]]),
    ("SELECT $$ ) AS x $$ AS a", [[" ) AS x "]]),
    ("SELECT ')' AS a /* ) */ ;", [[")"]]),
    ("TABLE orders ORDER BY id LIMIT 1", [[1, "new", "10.50"]]),
    ("SELECT status, count(*) FROM orders GROUP BY status ORDER BY 2 DESC, 1", [["paid", 2], ["new", 1]]),
    ("SHOW standard_conforming_strings", [["on"]]),
])
def test_the_wrapper_does_not_change_what_the_statement_means(pg, engine, sql, rows):
    assert read(engine, pg, sql).rows == rows


def test_a_second_statement_is_still_refused(pg, engine):
    with pytest.raises(CommandFailed):
        read(engine, pg, "SELECT 'a'; SELECT 'b'")


def test_only_a_single_select_is_wrapped():
    assert select_text("SELECT 1;  -- done") == "SELECT 1"
    assert select_text("/* é */ SELECT 'é' AS x ;") == "SELECT 'é' AS x"
    for sql in ("SHOW work_mem", "EXPLAIN SELECT 1", "SELECT 1 INTO t", "SELECT 1; SELECT 2", "SELEC 1"):
        assert select_text(sql) is None
    text = wrap("SELECT 1 -- c", 2, {1: 25}, 1000)
    assert "\nSELECT 1 -- c\n)" in text and "> 1000" in text and "> 1000 AND _l.l1 > 1000" in text
