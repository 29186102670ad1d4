"""``classify``: the broker's SQL risk classification, offline.

For tools: JSON lines on stdin, ``{"dialect": "postgres", "sql": "..."}`` (optionally ``"id"``),
one JSON line out per line in, with at least ``read_only``, ``risk`` and ``reason``. A line that
is not valid JSON or lacks ``sql`` is answered with ``risk: unknown`` and an ``error`` (fail closed).
For people: ``--sql "DELETE FROM t" --dialect postgres``.

    echo '{"dialect": "mysql", "sql": "SELECT 1"}' | python -m broker classify
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("classify", help="classify SQL risk (JSON lines on stdin, or --sql)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sql", help="one statement to classify (otherwise JSON lines are read from stdin)")
    p.add_argument("--dialect", default="postgres",
                   help="postgres, mysql or tsql (aliases: mariadb, mssql, azuresql); the default for "
                        "stdin lines without one (default: postgres)")
    p.add_argument("--json", action="store_true", help="with --sql: print JSON instead of text")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from broker.guard.sql import classify_sql

    if args.sql is not None:
        result = classify_sql(args.sql, args.dialect).to_dict()
        print(json.dumps(result, ensure_ascii=False) if args.json else render(result))
        return 0
    return classify_lines(sys.stdin, sys.stdout, args.dialect)


def classify_lines(lines: TextIO, out: TextIO, default_dialect: str) -> int:
    """Answer every non-blank input line; exit status 1 when any line was malformed."""
    from broker.guard.sql import classify_sql

    status = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        answer: dict[str, Any]
        try:
            item = json.loads(line)
            if not isinstance(item, dict) or not isinstance(item.get("sql"), str):
                raise ValueError("expected an object with a string 'sql'")
            dialect = item.get("dialect") or default_dialect
            if not isinstance(dialect, str):
                raise ValueError("'dialect' must be a string")
            answer = classify_sql(item["sql"], dialect).to_dict()
            if "id" in item:
                answer = {"id": item["id"], **answer}
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            status = 1
            answer = {"line": number, "read_only": False, "risk": "unknown", "reason": "malformed input line",
                      "error": str(exc)}
        out.write(json.dumps(answer, ensure_ascii=False) + "\n")
        out.flush()
    return status


def render(result: dict[str, Any]) -> str:
    lines = [f"risk       {result['risk']}" + ("  (read-only)" if result["read_only"] else "  (NOT read-only)"),
             f"reason     {result['reason']}",
             f"statement  {result.get('statement') or '-'}",
             f"dialect    {result.get('dialect', '-')} (parsers: {', '.join(result.get('parsers') or []) or '-'})"]
    for finding in result.get("findings") or []:
        lines.append(f"  also     {finding}")
    return "\n".join(lines)
