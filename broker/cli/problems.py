"""``problems``: the catalogue of problem codes every refusal carries (``broker/problem_codes.py``).

``--markdown`` prints the README's table (the README's copy is checked against it by a test).
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("problems", help="list the problem codes (status, meaning, what to do)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--markdown", action="store_true", help="print the README's Markdown table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from broker.problem_codes import CODES, markdown_table

    if args.markdown:
        print(markdown_table())
        return 0
    for entry in CODES.values():
        print(f"{entry.code:26} {'/'.join(map(str, entry.statuses)):8} {entry.meaning}")
    return 0
