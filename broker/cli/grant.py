"""``grant``: just-in-time access. ``request`` asks for read or write on a target for a while
(ISO 8601 duration, e.g. PT30M) and waits for the approvers; ``list`` shows your grants;
``revoke`` ends one early (its grantee, or an approver with ``--identity approver``)."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("grant", help="request, list or revoke just-in-time grants", description=__doc__)
    gsub = p.add_subparsers(dest="grant_command", metavar="ACTION", required=True)
    req = gsub.add_parser("request", help="ask for a grant and wait for approval")
    req.add_argument("--target", required=True)
    req.add_argument("--level", choices=["read", "write"], required=True)
    req.add_argument("--duration", default="PT30M", help="ISO 8601 duration (default PT30M), capped by policy")
    req.add_argument("--reason", required=True, help="why (shown to approvers, journaled)")
    req.add_argument("--ticket", default="")
    req.add_argument("--no-wait", action="store_true", help="print the request id and status URL and exit")
    req.set_defaults(func=run_request)
    ls = gsub.add_parser("list", help="your grants, newest first")
    ls.set_defaults(func=run_list)
    rev = gsub.add_parser("revoke", help="end an active grant now")
    rev.add_argument("request_id")
    rev.set_defaults(func=run_revoke)
    for parser in (req, ls, rev):
        parser.add_argument("--json", action="store_true", help="print the broker's JSON")
        parser.add_argument("--identity", default="devin", help="dev identity to use when BROKER_TOKEN is unset")


def run_request(args: argparse.Namespace) -> int:
    from broker.cli._client import BrokerClient, ClientError, fail
    from broker.cli._wait import EXIT_CODES, ended, wait

    body = {"target": args.target, "level": args.level, "duration": args.duration, "reason": args.reason}
    if args.ticket:
        body["ticket"] = args.ticket
    try:
        client = BrokerClient.from_env(args.identity)
        _, pending = client.request("POST", "/api/grants", json=body)
        if args.no_wait:
            print(json.dumps(pending, indent=2) if args.json else
                  f"grant pending approval: request {pending['request_id']}\nstatus: {pending['status_url']}")
            return 0
        if not args.json:
            print(f"grant requested: request {pending['request_id']}, expires {pending['expires_at']}", flush=True)
        status = wait(client, pending["request_id"], until=("pending", "approved"))
    except ClientError as error:
        return fail(error, args.json)
    print(json.dumps(status, indent=2) if args.json else ended(status))
    return EXIT_CODES.get(status.get("status", ""), 1)


def run_list(args: argparse.Namespace) -> int:
    from broker.cli._client import BrokerClient, ClientError, fail

    try:
        _, body = BrokerClient.from_env(args.identity).request("GET", "/api/grants")
    except ClientError as error:
        return fail(error, args.json)
    if args.json:
        print(json.dumps(body, indent=2))
        return 0
    for g in body["grants"]:
        print(f"{g['grant_id']}  {g['status']:<8} {g['level']:<5} {g['target']:<20} "
              f"until {g.get('expires_at') or '-'}  {g['reason'][:40]}")
    if not body["grants"]:
        print("(no grants)")
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    from broker.cli._client import BrokerClient, ClientError, fail

    try:
        _, body = BrokerClient.from_env(args.identity).request("POST", f"/api/grants/{args.request_id}/revoke")
    except ClientError as error:
        return fail(error, args.json)
    print(json.dumps(body, indent=2) if args.json else f"grant {args.request_id}: {body['status']}")
    return 0
