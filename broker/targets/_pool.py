"""The idle-connection pool the DB-API engines (MySQL, Azure SQL) share.

Connections are kept per (target, credential version, ...) key: a rotated credential (or a
renewed access token) retires the target's older connections instead of reusing them. A
connection goes back only when the engine says it is clean; anything else is closed.
(PostgreSQL uses psycopg_pool, which does the same for psycopg.)
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from broker.catalog import Target
from broker.secrets import SecretValue


def credential_version(secret: SecretValue) -> str:
    return secret.version or str(hash(secret.value))


def close_quietly(conn: Any) -> None:
    with contextlib.suppress(Exception):
        conn.close()


def fetch_batches(cursor: Any, limit: int, batch: int = 500) -> Iterator[Any]:
    """Rows from a DB-API cursor, at most ``limit``, fetched in batches (a capped read stops early)."""
    fetched = 0
    while fetched < limit:
        rows = cursor.fetchmany(min(batch, limit - fetched))
        if not rows:
            return
        fetched += len(rows)
        yield from rows


class IdlePool:
    def __init__(self, max_per_key: int) -> None:
        self._idle: dict[tuple[Any, ...], list[Any]] = {}
        self._lock = threading.Lock()
        self._max = max_per_key

    @staticmethod
    def key(target: Target, secret: SecretValue, *extra: Any) -> tuple[Any, ...]:
        return (target.name, credential_version(secret), *extra)

    def take(self, key: tuple[Any, ...]) -> Any | None:
        """An idle connection for ``key``, or None; the target's connections made with another
        credential are closed on the way."""
        with self._lock:
            for old in [k for k in self._idle if k[0] == key[0] and k[1] != key[1]]:
                for conn in self._idle.pop(old):
                    close_quietly(conn)
            idle = self._idle.get(key)
            return idle.pop() if idle else None

    def give(self, key: tuple[Any, ...], conn: Any) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < self._max:
                idle.append(conn)
                return
        close_quietly(conn)

    def close(self) -> None:
        with self._lock:
            for idle in self._idle.values():
                for conn in idle:
                    close_quietly(conn)
            self._idle.clear()
