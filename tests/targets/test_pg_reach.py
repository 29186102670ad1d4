"""A PostgreSQL target that refuses connections, or whose host does not resolve, is 503
``target_unavailable`` at once with the cause in the operator log, without waiting for the pool
(``broker/targets/_pg_reach.py``); a pool that is only busy still makes its callers wait their turn."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from broker.catalog import Target
from broker.problems import Unavailable
from broker.targets import Command, ExecutionLimits
from broker.targets.postgres import PostgresEngine
from devhost.stack import free_port

LIMITS = ExecutionLimits(max_rows=10, max_bytes=10_000, timeout_ms=5000)
WAIT = 60.0  # the pool's timeout: were it waited, these calls would take a minute


def _target(host: str, port: int) -> Target:
    return Target(name="gone-pg", engine="postgres", credential={"source": "key-vault", "secret": "x"},
                  connection={"host": host, "port": port, "database": "demo"})


@pytest.fixture()
def engine():
    engine = PostgresEngine(pool_max_size=1, connect_timeout=WAIT)
    yield engine
    engine.close()


@pytest.mark.parametrize(("host", "cause"), [("127.0.0.1", "refused"), ("no-such-host.invalid", "")])
def test_a_refused_or_unresolvable_target_is_unavailable_without_waiting_for_the_pool(engine, pg, caplog, host,
                                                                                       cause):
    target = _target(host, free_port())
    with caplog.at_level(logging.WARNING, logger="broker.targets._pg_reach"):
        for call in (lambda: engine.execute(target, Command("sql", sql="SELECT 1"), pg.writer, LIMITS,
                                            read_only=True),
                     lambda: engine.check(target, pg.writer),  # the health check and `targets check`
                     lambda: engine.read_schema(target, pg.writer)):
            with pytest.raises(Unavailable) as err:
                call()
            assert err.value.code == "target_unavailable" and "gone-pg" in err.value.detail
            assert host not in err.value.detail  # where it failed is for the operator, not the caller
    logged = [r.getMessage() for r in caplog.records]
    assert len(logged) == 3 and all(f"target gone-pg: {host}:" in m and "unreachable" in m for m in logged)
    assert all(cause in m.lower() for m in logged)
    stats = engine._pools[next(iter(engine._pools))][0].get_stats()
    assert stats.get("requests_num", 0) == 0  # nobody queued at the pool for a connection that cannot come


def test_a_busy_pool_still_makes_its_callers_wait_their_turn(engine, pg):
    run = Command("sql", sql="SELECT 41 + 1")
    assert engine.execute(pg.target, run, pg.writer, LIMITS, read_only=True).rows == [[42]]
    pool = engine._pools[next(iter(engine._pools))][0]
    deadline = time.monotonic() + 10
    while pool.get_stats()["pool_available"] == 0:  # the read's connection goes back behind its answer
        assert time.monotonic() < deadline
        time.sleep(0.01)
    held = pool.getconn()  # the pool's only connection, in use
    answers: list[object] = []
    waiting = threading.Thread(target=lambda: answers.append(
        engine.execute(pg.target, run, pg.writer, LIMITS, read_only=True).rows))
    waiting.start()
    try:
        while pool.get_stats().get("requests_waiting", 0) == 0:  # queued at the pool, not refused
            assert waiting.is_alive() and time.monotonic() < deadline, answers
            time.sleep(0.01)
    finally:
        pool.putconn(held)
    waiting.join(10)
    assert answers == [[[42]]]


def test_without_a_port_libpq_chooses_it_and_the_pool_decides(pg, caplog):
    """No port in the catalogue: libpq may take it from PGPORT or a service file, which the probe
    cannot know; it does not guess 5432 (a false "unreachable"), the pool's own wait decides."""
    engine = PostgresEngine(pool_max_size=1, connect_timeout=1.0)
    target = Target(name="portless-pg", engine="postgres", credential={"source": "key-vault", "secret": "x"},
                    connection={"host": "no-such-host.invalid", "database": "demo"})
    try:
        with caplog.at_level(logging.WARNING, logger="broker.targets._pg_reach"), pytest.raises(Unavailable) as err:
            engine.execute(target, Command("sql", sql="SELECT 1"), pg.writer, LIMITS, read_only=True)
        assert err.value.code == "target_unavailable"
        assert not [r for r in caplog.records if r.name == "broker.targets._pg_reach"]
    finally:
        engine.close()
