"""Helpers the SQL engines share: capped row collection and the credential secret's format."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from broker.problems import Unavailable
from broker.targets._cells import Cut
from broker.targets._render import to_json_value
from broker.targets.base import CutCell, ExecutionLimits, ResultSet


def collect_rows(rows: Iterable[Sequence[Any]], limits: ExecutionLimits,
                 render: Callable[[int, Any], Any] | None = None) -> ResultSet:
    """Render rows to JSON values until ``max_rows`` or ``max_bytes``; ``truncated`` says if it stopped.

    A ``Cut`` cell (withheld by the database, ``_cells``) is rendered ``null`` and listed in
    ``cut_cells``; it makes the answer ``truncated`` by ``max_bytes`` even when every row came."""
    result = ResultSet()
    size = 0
    for row in rows:
        if len(result.rows) >= limits.max_rows:
            result.truncated, result.truncated_by = True, "max_rows"
            break
        cuts = [(i, v.bytes) for i, v in enumerate(row) if isinstance(v, Cut)]
        rendered = [None if isinstance(v, Cut) else render(i, v) if render else to_json_value(v)
                    for i, v in enumerate(row)]
        row_bytes = len(json.dumps(rendered, ensure_ascii=False, default=str).encode())
        if size + row_bytes > limits.max_bytes:  # the row that would cross the cap is not sent
            result.truncated, result.truncated_by = True, "max_bytes"
            break
        size += row_bytes
        result.cut_cells.extend(CutCell(len(result.rows), i, n) for i, n in cuts)
        result.rows.append(rendered)
    if result.cut_cells and not result.truncated:
        result.truncated, result.truncated_by = True, "max_bytes"
    result.bytes = size
    return result


def parse_credential(value: str) -> dict[str, str]:
    """A secret is JSON ``{"username": ..., "password": ...}``, or a bare password."""
    text = value.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if not isinstance(data, dict) or "password" not in data:
            raise Unavailable("The target's credential secret is malformed.", code="secret_malformed")
        return {k: str(v) for k, v in data.items()}
    return {"password": value}
