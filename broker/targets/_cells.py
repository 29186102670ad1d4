"""Cells the database cut before sending: the shared vocabulary of the bounded reads.

An engine that reads through a size-checking projection (``_pg_wire``, ``_mysql_wire``,
``_mssql_wire``) gets, per variable-length column, either the value or NULL plus the value's size
in a marker column. ``Cut`` stands for such a cell between the engine and ``collect_rows``, which
renders it as ``null`` and records where it was, so the answer can say which cells are not
values but holes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Cut:
    """A cell the database withheld because its text form was ``bytes`` long."""

    bytes: int


def cell_share(max_bytes: int, variable_columns: int) -> int:
    """The size above which a variable-length cell is withheld when its row is over ``max_bytes``.

    A row whose variable cells sum to at most ``max_bytes`` is sent whole; otherwise every variable
    cell longer than ``max_bytes / n`` is withheld, so what crosses the wire per row is at most
    ``max_bytes`` plus the fixed-size columns, whatever the statement computes."""
    return max(0, max_bytes // max(1, variable_columns))


def split_markers(rows: Iterable[Sequence[Any]], width: int, marked: Sequence[int]) -> Iterator[list[Any]]:
    """Rows of ``width`` values followed by one marker per index in ``marked`` (the withheld cell's
    size, or NULL), as rows of ``width`` values where each withheld cell is a ``Cut``."""
    for row in rows:
        values = list(row[:width])
        for marker, index in zip(row[width:], marked, strict=True):
            if marker is not None:
                values[index] = Cut(int(marker))
        yield values
