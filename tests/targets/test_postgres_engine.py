"""PostgreSQL engine behaviour beyond the second wall: pooled sessions are reset between callers,
and a multi-statement string never reaches the server as two statements."""

from __future__ import annotations

import pytest

from broker.problems import CommandFailed, Unavailable
from broker.targets import Command, ExecutionLimits
from broker.targets.postgres import PostgresEngine

LIMITS = ExecutionLimits(max_rows=100, max_bytes=100_000, timeout_ms=5000)


@pytest.fixture()
def one_connection_engine():
    engine = PostgresEngine(pool_max_size=1)  # every call gets the same pooled connection
    yield engine
    engine.close()


def run(engine, pg, sql, read_only=True, secret=None):
    return engine.execute(pg.target, Command("sql", sql=sql), secret or pg.writer, LIMITS, read_only=read_only)


def test_session_settings_made_by_an_approved_write_do_not_reach_the_next_caller(pg, one_connection_engine):
    run(one_connection_engine, pg, "SET standard_conforming_strings = off", read_only=False)
    run(one_connection_engine, pg, "PREPARE leftover AS SELECT 1", read_only=False)
    shown = run(one_connection_engine, pg, "SHOW standard_conforming_strings")
    assert shown.rows == [["on"]]
    prepared = run(one_connection_engine, pg, "SELECT count(*) FROM pg_prepared_statements")
    assert prepared.rows == [[0]]


def test_a_second_statement_is_refused_by_the_protocol(pg, one_connection_engine):
    with pytest.raises(CommandFailed) as err:
        run(one_connection_engine, pg, "SELECT 1; DELETE FROM orders", read_only=False)
    assert err.value.extra["sqlstate"] == "42601"
    assert run(one_connection_engine, pg, "SELECT count(*) FROM orders").rows == [[3]]


def test_byte_cap_counts_encoded_bytes_and_never_sends_the_row_that_crosses_it(pg, one_connection_engine):
    limits = ExecutionLimits(max_rows=100, max_bytes=2000, timeout_ms=5000)
    result = one_connection_engine.execute(pg.target, Command("sql", sql="SELECT repeat('é', 300) FROM "
                                                              "generate_series(1, 10)"), pg.writer, limits,
                                           read_only=True)
    assert result.truncated and result.bytes <= 2000 and result.row_count == 3  # ~606 bytes a row


def test_a_read_only_statement_without_rows_answers_with_its_status(pg, one_connection_engine):
    result = run(one_connection_engine, pg, "SET LOCAL work_mem = '8MB'")
    assert result.rows == [] and result.columns == []


def test_the_same_statement_many_times_across_resets_keeps_working(pg, one_connection_engine):
    for _ in range(12):  # past psycopg's auto-prepare threshold, with a DISCARD ALL between calls
        assert run(one_connection_engine, pg, "SELECT 1").rows == [[1]]


def test_a_pooled_connection_the_server_dropped_is_replaced_before_anything_runs(pg, one_connection_engine):
    pid = run(one_connection_engine, pg, "SELECT pg_backend_pid()").rows[0][0]
    with pg.server.admin() as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    result = run(one_connection_engine, pg, "SELECT pg_backend_pid()")
    assert result.rows[0][0] != pid


def test_a_failed_write_leaves_nothing_behind_and_the_connection_is_not_reused(pg, one_connection_engine):
    pid = run(one_connection_engine, pg, "SELECT pg_backend_pid()").rows[0][0]
    with pytest.raises(CommandFailed):
        run(one_connection_engine, pg, "INSERT INTO orders VALUES (1, 'dup', 1)", read_only=False)
    assert run(one_connection_engine, pg, "SELECT count(*) FROM orders").rows == [[3]]
    assert run(one_connection_engine, pg, "SELECT pg_backend_pid()").rows[0][0] != pid


@pytest.mark.parametrize("read_only", [True, False])
def test_a_backend_terminated_mid_statement_is_the_target_failing_not_the_command(pg, one_connection_engine,
                                                                                   read_only):
    """SQLSTATE 57P01 (admin_shutdown) mid-statement: 503 target_unavailable, so the agent may retry;
    never 422 query_failed, which tells it to fix its command. The write was rolled back."""
    import threading
    import time

    pid = run(one_connection_engine, pg, "SELECT pg_backend_pid()").rows[0][0]

    def terminate() -> None:
        time.sleep(0.3)
        with pg.server.admin() as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))

    killer = threading.Thread(target=terminate)
    killer.start()
    sql = ("SELECT pg_sleep(5)" if read_only else
           "INSERT INTO orders SELECT 9000 + g, 'terminated', 1 FROM generate_series(1, 3) g, pg_sleep(5)")
    with pytest.raises(Unavailable) as err:
        run(one_connection_engine, pg, sql, read_only=read_only)
    killer.join()
    assert err.value.code == "target_unavailable"
    assert run(one_connection_engine, pg, "SELECT count(*) FROM orders").rows == [[3]]


@pytest.mark.parametrize("stop", ["terminate", "close_socket"])
def test_a_backend_lost_while_the_read_is_described_is_the_target_failing(pg, one_connection_engine,
                                                                          monkeypatch, stop):
    """The bounded read describes the statement on the raw libpq connection first; a backend lost
    there (the server was killed: no SQLSTATE, or 57P01) is 503 target_unavailable, not 422."""
    from broker.targets import _pg_wire

    real_describe = _pg_wire.describe

    def lost_first(conn, sql):
        if stop == "terminate":
            with pg.server.admin() as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (conn.info.backend_pid,))
        else:
            import os
            import socket
            socket.socket(fileno=os.dup(conn.pgconn.socket)).shutdown(socket.SHUT_RDWR)
        return real_describe(conn, sql)

    monkeypatch.setattr(_pg_wire, "describe", lost_first)
    with pytest.raises(Unavailable) as err:
        run(one_connection_engine, pg, "SELECT name FROM orders")
    assert err.value.code == "target_unavailable"
    monkeypatch.setattr(_pg_wire, "describe", real_describe)
    assert run(one_connection_engine, pg, "SELECT count(*) FROM orders").rows == [[3]]


def test_a_connection_lost_mid_read_is_the_target_failing_even_as_a_result_without_sqlstate(
        pg, one_connection_engine, monkeypatch):
    """libpq can hand a lost connection back as a failed result without SQLSTATE, which psycopg
    raises as a plain DatabaseError, not an OperationalError (seen once when the fault suite killed
    PostgreSQL: 422 query_failed). Here the socket really is gone and the error is the library's own."""
    import os
    import socket

    import psycopg
    from psycopg import errors as pg_errors
    from psycopg import pq

    from broker.targets import _pg_wire

    def lost(conn, sql):
        socket.socket(fileno=os.dup(conn.pgconn.socket)).shutdown(socket.SHUT_RDWR)
        failed = conn.pgconn.exec_(sql.encode())
        assert failed.status == pq.ExecStatus.FATAL_ERROR and failed.error_field(pq.DiagnosticField.SQLSTATE) is None
        error = pg_errors.error_from_result(failed)
        assert type(error) is psycopg.DatabaseError  # what the engine must not blame on the command
        raise error

    monkeypatch.setattr(_pg_wire, "describe", lost)
    with pytest.raises(Unavailable) as err:
        run(one_connection_engine, pg, "SELECT name FROM orders")
    assert err.value.code == "target_unavailable"


@pytest.mark.parametrize("leftover, check, clean", [
    ("SELECT pg_advisory_lock(4242)",
     "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()", [[0]]),
    ("SELECT set_config('broker.leak', 'left', false)", "SELECT current_setting('broker.leak', true)", [[""]]),
    ("DECLARE leftover CURSOR WITH HOLD FOR SELECT 1",
     "SELECT count(*) FROM pg_cursors WHERE name = 'leftover'", [[0]]),
])
def test_a_read_is_closed_and_its_session_reset_before_the_connection_serves_anyone_else(
        pg, one_connection_engine, leftover, check, clean):
    # a read's ROLLBACK and reset run behind its answer; the next caller still gets a clean session,
    # straight away, on the very same (only) connection
    for _ in range(3):
        run(one_connection_engine, pg, leftover)
        assert run(one_connection_engine, pg, check).rows in (clean, [[None]])

