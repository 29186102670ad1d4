"""``kubectl``: the agent-side client for Kubernetes targets. Sends ARGS as the kubectl argument
list to ``POST /api/execute`` (no shell ever sees them) and prints the masked result the way
kubectl would: tables, YAML, JSON, logs, describe text, exec output with its exit code.

``apply -f FILE`` (or ``-f -`` for stdin) reads the manifest here, on the agent's side, and sends
it in the request's ``manifest`` field; the broker itself never reads a path.

Examples (dev stack):
  python -m broker kubectl --target demo-k8s get pods -n demo -l app=web
  python -m broker kubectl --target demo-k8s get secret db-credentials -n demo -o yaml
  python -m broker kubectl --target demo-k8s logs -n demo -l app=web --tail 5
  python -m broker kubectl --target demo-k8s exec -n demo POD -- env
  python -m broker kubectl --target demo-k8s scale deployment/web --replicas 5 -n demo
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    from broker.cli._options import add_call_options


    p = sub.add_parser("kubectl", help="run a kubectl command on a Kubernetes target through the broker",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", required=True, help="target name from the catalog, e.g. demo-k8s")
    add_call_options(p)
    p.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS...", help="kubectl arguments, e.g. get pods")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from broker.cli._client import BrokerClient, ClientError, fail
    from broker.cli._wait import settle

    argv = list(args.args)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print("give the kubectl arguments, e.g.: kubectl --target demo-k8s get pods -n demo", file=sys.stderr)
        return 2
    try:
        argv, manifest = split_manifest(argv)
    except (OSError, ValueError) as exc:
        print(f"error: cannot read the manifest: {exc}", file=sys.stderr)
        return 2
    body: dict[str, Any] = {"target": args.target, "kubectl": argv}
    if manifest is not None:
        body["manifest"] = manifest
    if args.reason:
        body["reason"] = args.reason
    if args.ticket:
        body["ticket"] = args.ticket
    try:
        client = BrokerClient.from_env(args.identity)
        code, result = client.request("POST", "/api/execute", json=body)
        if code == 202:  # a change that waits for an approver: like `exec`, wait (or --no-wait)
            return settle(client, result, as_json=args.json, no_wait=args.no_wait, render=print_result)
    except ClientError as error:
        return fail(error, args.json)
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return 0
    return print_result(result)


def split_manifest(argv: list[str]) -> tuple[list[str], Any]:
    """Take ``-f FILE`` / ``--filename=FILE`` out of an apply command and load the file (YAML, many docs)."""
    if not argv or argv[0] != "apply":
        return argv, None
    import yaml

    out: list[str] = []
    documents: list[Any] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, has_value, value = arg.partition("=")
        if name in ("-f", "--filename"):
            if not has_value:
                if i + 1 >= len(argv):
                    raise ValueError(f"{name} needs a file")
                value, i = argv[i + 1], i + 1
            text = sys.stdin.read() if value == "-" else Path(value).read_text(encoding="utf-8")
            documents += [d for d in yaml.safe_load_all(text) if d is not None]
        else:
            out.append(arg)
        i += 1
    if not documents:
        return out, None
    return out, documents[0] if len(documents) == 1 else documents


def print_result(result: dict[str, Any]) -> int:
    """Print as kubectl would; broker notes (masking, truncation, journal id) go to stderr."""
    if result.get("status") != "done":
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return 0
    code = 0
    document = result.get("document")
    columns = [c["name"] for c in result.get("columns") or []]
    if columns:
        if result.get("rows"):
            print(render_table(columns, result["rows"]))
        else:
            print(result.get("command_status") or "No resources found.", file=sys.stderr)
    elif result.get("text") is not None:
        sys.stdout.write(result["text"])
    elif isinstance(document, dict) and {"stdout", "stderr", "exit_code"} <= set(document):
        sys.stdout.write(document["stdout"])
        sys.stderr.write(document["stderr"])
        code = document["exit_code"] if isinstance(document["exit_code"], int) else 1
    elif document is not None:
        print(json.dumps(document, indent=4, ensure_ascii=False))
    notes = []
    if result.get("truncated"):
        notes.append(f"output cut at the policy's limit ({result.get('command_status', '')})")
    masked = result.get("masked") or {}
    if masked:
        notes.append("masked " + ", ".join(f"{k} {v}" for k, v in sorted(masked.items())))
    if notes:
        print(f"broker: {' · '.join(notes)} · journal {result.get('record_id', '?')}", file=sys.stderr)
    return code


def render_table(columns: list[str], rows: list[list[Any]]) -> str:
    """kubectl's plain table: upper-case headers, columns padded by three spaces."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(columns)]
    lines = ["   ".join(h.ljust(w) for h, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["   ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)
