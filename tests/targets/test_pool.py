"""The idle pool the MySQL and Azure SQL engines share."""

from __future__ import annotations

from broker.catalog import Target
from broker.secrets import SecretValue
from broker.targets._pool import IdlePool, fetch_batches

TARGET = Target(name="db", engine="mysql", credential={"source": "key-vault", "secret": "s"})


class Conn:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_a_rotated_credential_retires_the_old_connections_and_keeps_other_intents():
    pool = IdlePool(4)
    old_ro, old_rw = Conn(), Conn()
    pool.give(IdlePool.key(TARGET, SecretValue("a", "v1"), True), old_ro)
    pool.give(IdlePool.key(TARGET, SecretValue("a", "v1"), False), old_rw)
    assert pool.take(IdlePool.key(TARGET, SecretValue("b", "v2"), True)) is None
    assert old_ro.closed and old_rw.closed
    fresh = Conn()
    pool.give(IdlePool.key(TARGET, SecretValue("b", "v2"), False), fresh)
    assert pool.take(IdlePool.key(TARGET, SecretValue("b", "v2"), True)) is None  # other intent: kept
    assert pool.take(IdlePool.key(TARGET, SecretValue("b", "v2"), False)) is fresh and not fresh.closed


def test_connections_beyond_the_limit_are_closed_and_close_empties_the_pool():
    pool = IdlePool(1)
    key = IdlePool.key(TARGET, SecretValue("a", "v1"))
    first, second = Conn(), Conn()
    pool.give(key, first)
    pool.give(key, second)
    assert second.closed and not first.closed
    pool.close()
    assert first.closed and pool.take(key) is None


def test_fetch_batches_stops_at_the_limit():
    class Cursor:
        def __init__(self) -> None:
            self.rows, self.asked = list(range(10)), []

        def fetchmany(self, n: int) -> list[int]:
            self.asked.append(n)
            out, self.rows = self.rows[:n], self.rows[n:]
            return out

    cursor = Cursor()
    assert list(fetch_batches(cursor, 7, batch=3)) == list(range(7)) and cursor.asked == [3, 3, 1]
