"""``exec``: the agent-side client. Sends one command to ``POST /api/execute`` and prints the
(masked) result as a table, or the refusal with its code and remedy. A command that needs
approval waits (spinner and time left) until an approver decides, then prints the result;
``--no-wait`` prints the request id and status URL instead. ``--json`` prints JSON for tools.

Exit codes: 0 done, 1 refused/error, 3 denied, 4 expired (nobody approved), 5 failed, 6 cancelled."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    from broker.cli._options import add_call_options


    p = sub.add_parser("exec", help="run a command through the broker (agent side)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", required=True, help="target name from the catalog, e.g. demo-postgres")
    p.add_argument("--sql", required=True, help="one SQL statement")
    add_call_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from broker.cli._client import BrokerClient, ClientError, fail
    from broker.cli._wait import settle

    body = {"target": args.target, "sql": args.sql}
    if args.reason:
        body["reason"] = args.reason
    if args.ticket:
        body["ticket"] = args.ticket
    try:
        client = BrokerClient.from_env(args.identity)
        code, result = client.request("POST", "/api/execute", json=body)
        if code == 202:
            return settle(client, result, as_json=args.json, no_wait=args.no_wait,
                          render=lambda done: print(render_result(done)))
    except ClientError as error:
        return fail(error, args.json)
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        print(render_result(result))
    return 0


def _cell(value: Any, width: int = 48) -> str:
    text = "NULL" if value is None else value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = text.replace("\n", "\\n")
    return text if len(text) <= width else text[: width - 1] + "…"


def render_result(result: dict[str, Any]) -> str:
    columns = [c["name"] for c in result.get("columns", [])]
    lines: list[str] = []
    if columns:
        cells = [[_cell(v) for v in row] for row in result.get("rows", [])]
        widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
        lines.append("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
        lines.append("")
    summary = [f"{result.get('row_count', 0)} row(s)"]
    if result.get("truncated"):
        summary.append("TRUNCATED at the policy's row/byte limit")
    if result.get("affected_rows") is not None:
        summary.append(f"{result['affected_rows']} affected")
    masked = result.get("masked") or {}
    if masked:
        summary.append("masked " + ", ".join(f"{k} {v}" for k, v in sorted(masked.items())))
    summary.append(f"{result.get('duration_ms', 0)} ms")
    summary.append(f"journal {result.get('record_id', '?')}")
    lines.append(" · ".join(summary))
    return "\n".join(lines)
