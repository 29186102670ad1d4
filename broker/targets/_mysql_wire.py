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

A write's result (``INSERT/DELETE/REPLACE ... RETURNING``, a SELECT on the write path) is read to its
end instead, so the statement completes on the server and can be committed: an oversized row is
read off the wire in 64 kB pieces and dropped (never held whole), and the rows after it are counted,
not kept. The answer has the rows before it, ``truncated_by: max_bytes``, and the statement's count.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import pymysql
from pymysql.connections import MAX_PACKET_LEN

_PER_CELL_FRAMING = 9  # a length-encoded string's prefix is at most 9 bytes
_ROW_SLACK = 64
_SKIP_CHUNK = 65536
_COUNT_ONLY_LIMIT = 65536  # rows nobody keeps (the trial counts them): any longer one is skipped


class RowTooLarge(Exception):
    """The server announced a row packet longer than the limit; nothing of it was read."""

    def __init__(self, length: int) -> None:
        super().__init__(f"row packet of {length} bytes over the limit")
        self.length = length


class BoundedConnection(pymysql.connections.Connection):
    """A PyMySQL connection that refuses to read a packet longer than ``packet_limit`` (when set)."""

    packet_limit: int | None = None
    skip_oversized = False
    """A write's result: read an oversized packet off the wire and drop it, instead of closing."""

    def _read_bytes(self, num_bytes: int) -> bytes:
        if self.packet_limit is not None and num_bytes > self.packet_limit:
            if self.skip_oversized:
                raise RowTooLarge(self._skip(num_bytes))
            self.abandon()
            raise RowTooLarge(num_bytes)
        return super()._read_bytes(num_bytes)

    def _skip(self, length: int) -> int:
        """Read and drop a packet's ``length`` bytes, and its continuation packets (a row over 16 MB is
        sent in pieces, each announced by a header), in bounded pieces; the row's whole length. The
        header of the first piece was read (and its sequence number checked) by PyMySQL."""
        total = 0
        while True:
            left = length
            while left:
                piece = min(left, _SKIP_CHUNK)
                super()._read_bytes(piece)
                left -= piece
            total += length
            if length < MAX_PACKET_LEN:
                return total
            low, high, sequence = struct.unpack("<HBB", super()._read_bytes(4))
            if sequence != self._next_seq_id:
                self._force_close()
                raise pymysql.err.InternalError(f"Packet sequence number wrong - got {sequence} "
                                                f"expected {self._next_seq_id}")
            self._next_seq_id = (self._next_seq_id + 1) % 256
            length = low + (high << 16)

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


def write_rows(conn: BoundedConnection, cursor: Any, packet_limit: int, seen: list[int]) -> Iterator[Any]:
    """Every row of an unbuffered write's result, read to its end: yields them up to the first row
    longer than ``packet_limit`` (skipped off the wire, never held), then only counts the rest. At the
    end ``seen`` is [rows read, length of the first skipped row or 0]."""
    conn.packet_limit, conn.skip_oversized = packet_limit, True
    count = skipped = 0
    try:
        while True:
            try:
                row = cursor.fetchone()
            except RowTooLarge as exc:
                count, skipped = count + 1, skipped or exc.length
                continue
            if row is None:
                return
            count += 1
            if not skipped:
                yield row
    finally:
        conn.packet_limit, conn.skip_oversized = None, False
        seen[:] = [count, skipped]


def run_counted(conn: BoundedConnection, sql: str) -> int:
    """Run a changing statement (not committed) and read its result to the end keeping nothing: the
    rows it affected (a result set's rows: one per row ``RETURNING`` reports)."""
    with conn.cursor(pymysql.cursors.SSCursor) as cur:
        affected = cur.execute(sql)
        if not cur.description:
            return int(affected)
        seen: list[int] = []
        for _ in write_rows(conn, cur, _COUNT_ONLY_LIMIT, seen):
            pass
        return seen[0]
