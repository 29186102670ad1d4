"""Options the agent-side commands share, apart from the HTTP client so that building the parser
(every ``python -m broker`` start, ``--help`` included) does not import httpx and the settings."""

from __future__ import annotations

import argparse


def add_call_options(parser: argparse.ArgumentParser) -> None:
    """The options every agent-side command shares (exec, kubectl)."""
    parser.add_argument("--reason", default="", help="why (journaled; shown to approvers)")
    parser.add_argument("--ticket", default="", help="ticket or incident id (journaled)")
    parser.add_argument("--json", action="store_true", help="print the broker's JSON response")
    parser.add_argument("--no-wait", action="store_true",
                        help="when approval is needed, print the request id and status URL and exit")
    parser.add_argument("--identity", default="devin", help="dev identity to use when BROKER_TOKEN is unset")
