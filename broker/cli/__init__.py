"""``python -m broker``: the agent's client, the operator's and auditor's tools, and the dev stack.

Each command is a module in this package with ``register(subparsers)``; ``COMMANDS`` is the
explicit list. Modules import their heavy dependencies inside ``run`` so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from importlib import import_module

COMMANDS = ["dev", "token", "exec", "requests", "grant", "kubectl", "journal", "classify", "data", "targets",
            "policy", "mask", "problems", "mcp-proxy"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m broker",
        description="Access broker for AI agents on Azure: run commands on databases and clusters "
                    "through one audited, masked, policy-checked endpoint.",
        epilog="Run `python -m broker COMMAND --help` for a command's options.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        import_module(f"broker.cli.{name.replace('-', '_')}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
