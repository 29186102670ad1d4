"""Reads from MySQL/MariaDB that never pull a row larger than the byte cap off the wire.

The text protocol sends each row as one packet whose 4-byte header announces its length (a row
over 16 MB continues in further packets, each announced the same way). PyMySQL reads a packet's
payload with one ``_read_bytes(length)`` call right after reading that header, so refusing a
length over the limit there stops an oversized row before any of it is in the broker's memory;
the connection is then closed (the rest of the row is still on the wire). PyMySQL has no public
hook for this; ``_read_bytes`` is the one private method overridden, and the tests read real
rows through it, so a PyMySQL that reads differently fails them instead of silently reading.

Unlike PostgreSQL (``_pg_wire``), no single cell is withheld and marked: the server would have to
measure each value in a wrapper query, and MariaDB merges derived tables into the outer query
(a non-deterministic expression such as ``SYSDATE()`` would be measured and sent as two different
values). The row that would cross the cap is not read, as ``collect_rows`` does not send it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pymysql

_PER_CELL_FRAMING = 9  # a length-encoded string's prefix is at most 9 bytes
_ROW_SLACK = 64


class RowTooLarge(Exception):
    """The server announced a row packet longer than the limit; nothing of it was read."""

    def __init__(self, length: int) -> None:
        super().__init__(f"row packet of {length} bytes over the limit")
        self.length = length


class BoundedConnection(pymysql.connections.Connection):
    """A PyMySQL connection that refuses to read a packet longer than ``packet_limit`` (when set)."""

    packet_limit: int | None = None

    def _read_bytes(self, num_bytes: int) -> bytes:
        if self.packet_limit is not None and num_bytes > self.packet_limit:
            self.abandon()
            raise RowTooLarge(num_bytes)
        return super()._read_bytes(num_bytes)

    def abandon(self) -> None:
        """Close the socket with a result still on it. PyMySQL would otherwise read the rest of an
        unbuffered result when its cursor is collected (every remaining row, through memory)."""
        if self._result is not None:
            self._result.unbuffered_active = False
        self._force_close()


def row_limit(max_bytes: int, columns: int) -> int:
    """The longest row packet worth reading: a row whose JSON form fits ``max_bytes`` is never
    longer on the wire than that plus each cell's length prefix (JSON adds quotes and commas;
    binary cells grow by a third in base64)."""
    return int(max_bytes) + _PER_CELL_FRAMING * max(1, columns) + _ROW_SLACK


def bounded_rows(conn: BoundedConnection, cursor: Any, limit: int, packet_limit: int,
                 stopped: list[int]) -> Iterator[Any]:
    """Up to ``limit`` rows of an unbuffered cursor, one at a time (a refused row loses no earlier
    one); ends at the first row longer than ``packet_limit``, whose length goes to ``stopped``."""
    conn.packet_limit = packet_limit
    try:
        for _ in range(limit):
            row = cursor.fetchone()
            if row is None:
                return
            yield row
    except RowTooLarge as exc:
        stopped.append(exc.length)
    finally:
        conn.packet_limit = None
