"""Refusing at once a PostgreSQL target that refuses connections (``postgres.py``).

psycopg_pool opens connections in the background and a caller waits its ``timeout`` for one, so a
target with nothing listening, or a host name that does not resolve, cost every caller the whole
wait (3 s), and the cause never reached the log. ``Reach`` remembers whether the pool's latest
attempt to connect succeeded. While it has not (a new pool, or a failing target) and the pool has
no idle connection, one TCP connect to the host decides: refused, unresolvable or unanswered is
``target_unavailable`` now, the cause logged for the operator. A pool whose connections succeed
is never probed, so under load its callers still wait their turn for a connection.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from broker.catalog import Target
from broker.problems import Unavailable
from broker.targets.postgres_connection import PostgresConnection

log = logging.getLogger(__name__)


class Reach:
    """One pool's connection attempts: whether the latest one succeeded."""

    def __init__(self) -> None:
        self.connected = False

    def connection_class(self) -> type[psycopg.Connection[Any]]:
        """The pool's connection class: ``psycopg.Connection``, recording each attempt's result."""
        reach = self

        class TrackedConnection(psycopg.Connection):  # type: ignore[type-arg]
            @classmethod
            def connect(cls, *args: Any, **kwargs: Any) -> Any:
                try:
                    conn = super().connect(*args, **kwargs)
                except BaseException:
                    reach.connected = False
                    raise
                reach.connected = True
                return conn

        return TrackedConnection

    def refuse_if_unreachable(self, target: Target, pool: ConnectionPool, timeout: float) -> None:
        """Raise ``target_unavailable`` when the pool would only wait for a connection that cannot come."""
        if self.connected or pool.get_stats().get("pool_available", 0) > 0:
            return
        conn = target.settings(PostgresConnection)
        host = conn.host
        if not host or host.startswith("/") or "," in host or not conn.port:
            # a socket path, several hosts, or a port libpq takes from its environment or a service
            # file: libpq's own choice, the pool's wait decides
            return
        try:
            with socket.create_connection((host, conn.port), timeout=timeout):
                return
        except OSError as exc:  # refused, unresolvable, unreachable, or no answer within the timeout
            log.warning("target %s: %s:%s is unreachable: %s", target.name, host, conn.port,
                        exc or type(exc).__name__)
            raise Unavailable(f"Target {target.name} is unreachable.", code="target_unavailable") from exc
