"""``mask``: mask JSON lines with the broker's engine, offline.

Reads JSON lines on stdin, each one row (an object of column -> value), and writes the masked
rows as JSON lines on stdout: same keys, same order. ``--rules FILE`` (YAML or JSON) adds rules
with the keys of a target's ``masking:`` section (columns, column_patterns, keep_columns,
keep_card_last_four, ip_addresses) plus ``fields`` (document paths such as ``data.*``).
A line that is not a JSON object stops the command (exit 2) after the rows before it; the line
itself is never echoed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from itertools import islice
from pathlib import Path
from typing import Any, TextIO

CHUNK_ROWS = 2000


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mask", help="mask JSON-lines rows from stdin (offline)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rules", type=Path, metavar="FILE", help="masking rules, YAML or JSON")
    p.add_argument("--stats", action="store_true", help="print the counts of masked values by type on stderr")
    p.add_argument("--key-file", type=Path, metavar="FILE",
                   help="file holding the masking key (>= 16 bytes); without it a random key is used, so "
                        "equal values map to equal placeholders within this run only")
    p.add_argument("--scanner", choices=["auto", "hyperscan", "re"], default="auto",
                   help="prefilter: hyperscan when installed (auto), or force one")
    p.set_defaults(func=run)


class InputError(Exception):
    """A line of input (or the rules file) is unusable; the message never quotes the data."""


def run(args: argparse.Namespace) -> int:
    import secrets

    from broker.masking import Masker

    try:
        rules = load_rules(args.rules) if args.rules else None
        key = args.key_file.read_bytes().rstrip(b"\r\n") if args.key_file else secrets.token_bytes(32)
        masker = Masker(key, scanner=args.scanner)
    except (InputError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    counts: Counter[str] = Counter()
    try:
        mask_stream(masker, rules, sys.stdin, sys.stdout, counts)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if args.stats:
            print_stats(counts, sys.stderr)
    return 0


def load_rules(path: Path) -> Any:
    import yaml
    from pydantic import ValidationError

    from broker.catalog import MaskingOverrides
    from broker.masking import FieldRule, MaskingRules

    class RulesFile(MaskingOverrides):
        fields: tuple[str | dict[str, str], ...] = ()

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        spec = RulesFile.model_validate(raw)
        fields = tuple(FieldRule(**f) if isinstance(f, dict) else FieldRule(f) for f in spec.fields)
        return MaskingRules(spec.columns, spec.column_patterns, spec.keep_columns, fields,
                            keep_card_last_four=spec.keep_card_last_four, ip_addresses=spec.ip_addresses)
    except (OSError, yaml.YAMLError, ValidationError, TypeError) as exc:
        raise InputError(f"rules {path}: {exc}") from None


def mask_stream(masker: Any, rules: Any, source: TextIO, sink: TextIO, counts: Counter[str]) -> None:
    """Mask ``source`` to ``sink`` a chunk of rows at a time; rows with the same columns are
    masked together (one scan per chunk)."""
    lines = enumerate(source, start=1)
    while chunk := list(islice(lines, CHUNK_ROWS)):
        rows: list[tuple[int, dict[str, Any]]] = []
        error = None
        for number, line in chunk:
            if line.strip():
                try:
                    rows.append((number, _parse(number, line)))
                except InputError as exc:  # write the rows before it, then stop
                    error = exc
                    break
        groups: dict[tuple[str, ...], list[int]] = {}
        for i, (_, row) in enumerate(rows):
            groups.setdefault(tuple(row), []).append(i)
        out: list[dict[str, Any]] = [{} for _ in rows]
        for columns, indexes in groups.items():
            table = masker.mask_table(list(columns), [list(rows[i][1].values()) for i in indexes], rules)
            counts.update(table.counts)
            for i, masked in zip(indexes, table.rows, strict=True):
                out[i] = dict(zip(columns, masked, strict=True))
        sink.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in out)
        sink.flush()
        if error is not None:
            raise error


def _parse(number: int, line: str) -> dict[str, Any]:
    try:
        row = json.loads(line)
    except ValueError as exc:
        raise InputError(f"line {number} is not JSON ({type(exc).__name__} at column "
                         f"{getattr(exc, 'colno', '?')}); stopped there") from None
    if not isinstance(row, dict):
        raise InputError(f"line {number} is JSON but not an object of column -> value; stopped there")
    return row


def print_stats(counts: Counter[str], stream: TextIO) -> None:
    total = sum(counts.values())
    print(f"masked {total} value{'s' if total != 1 else ''}", file=stream)
    for kind, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {kind:24} {n}", file=stream)
