"""``requests``: where an approval request stands (the agent side of ``GET /api/requests/{id}``).
``show ID`` prints it; ``--wait`` waits until it ends, like ``exec`` does; ``cancel ID`` withdraws a
pending one (nothing runs, the approvers' links stop deciding); ``list`` shows your own requests,
newest first. ``decide ID approve|deny``
is the approver's side: a decision with one's own Entra token (channel ``entra``, the one a policy's
``require_sign_in`` counts)."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("requests", help="show (or wait for) a pending request", description=__doc__)
    rsub = p.add_subparsers(dest="requests_command", metavar="ACTION", required=True)
    show = rsub.add_parser("show", help="one request: status, who decided, the result when done")
    show.add_argument("request_id")
    show.add_argument("--wait", action="store_true", help="wait until it ends (spinner and time left)")
    show.add_argument("--json", action="store_true", help="print the broker's JSON")
    show.add_argument("--identity", default="devin", help="dev identity to use when BROKER_TOKEN is unset")
    show.set_defaults(func=run_show)
    cancel = rsub.add_parser("cancel", help="cancel a pending request you made (DELETE /api/requests/ID)")
    cancel.add_argument("request_id")
    cancel.add_argument("--json", action="store_true", help="print the broker's JSON")
    cancel.add_argument("--identity", default="devin", help="dev identity to use when BROKER_TOKEN is unset")
    cancel.set_defaults(func=run_cancel)
    listing = rsub.add_parser("list", help="your own requests, newest first (GET /api/requests)")
    listing.add_argument("--limit", type=int, default=20, help="at most this many (1-100)")
    listing.add_argument("--json", action="store_true", help="print the broker's JSON")
    listing.add_argument("--identity", default="devin", help="dev identity to use when BROKER_TOKEN is unset")
    listing.set_defaults(func=run_list)
    decide = rsub.add_parser("decide", help="approve or deny a request as yourself (your own Entra token)")
    decide.add_argument("request_id")
    decide.add_argument("verdict", choices=("approve", "deny"))
    decide.add_argument("--comment", default="", help="shown to the requester (status and refusal)")
    decide.add_argument("--json", action="store_true", help="print the broker's JSON")
    decide.add_argument("--identity", default="approver", help="dev identity to use when BROKER_TOKEN is unset")
    decide.set_defaults(func=run_decide)


def run_show(args: argparse.Namespace) -> int:
    from broker.cli._client import BrokerClient, ClientError, fail
    from broker.cli._wait import EXIT_CODES, ended, wait
    from broker.cli.exec import render_result

    try:
        client = BrokerClient.from_env(args.identity)
        if args.wait:
            status = wait(client, args.request_id)
        else:
            _, status = client.request("GET", f"/api/requests/{args.request_id}")
    except ClientError as error:
        return fail(error, args.json)
    if args.json:
        print(json.dumps(status, indent=2, ensure_ascii=False))
    else:
        print(f"{status['kind']} request {status['request_id']} on {status.get('target')}: {status['status']}")
        print(ended(status))
        if status.get("result"):
            print(render_result(status["result"]))
    return EXIT_CODES.get(status.get("status", ""), 0)


def run_cancel(args: argparse.Namespace) -> int:
    from broker.cli._client import BrokerClient, ClientError, fail

    try:
        client = BrokerClient.from_env(args.identity)
        _, status = client.request("DELETE", f"/api/requests/{args.request_id}")
    except ClientError as error:
        return fail(error, args.json)
    if args.json:
        print(json.dumps(status, indent=2, ensure_ascii=False))
    else:
        print(f"request {status['request_id']} cancelled; nothing ran")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from broker.cli._client import BrokerClient, ClientError, fail

    try:
        client = BrokerClient.from_env(args.identity)
        _, body = client.request("GET", f"/api/requests?mine&limit={args.limit}")
    except ClientError as error:
        return fail(error, args.json)
    if args.json:
        print(json.dumps(body, indent=2, ensure_ascii=False))
        return 0
    for r in body["requests"]:
        print(f"{r['created_at'][:19]}  {r['request_id']}  {r['kind']:<7} {r['status']:<9} {r['target']}  "
              f"{r['reason']}")
    return 0


def run_decide(args: argparse.Namespace) -> int:
    from broker.cli._client import BrokerClient, ClientError, fail

    body = {"verdict": args.verdict, **({"comment": args.comment} if args.comment else {})}
    try:
        client = BrokerClient.from_env(args.identity)
        _, reply = client.request("POST", f"/api/approvals/{args.request_id}/decision", json=body)
    except ClientError as error:
        return fail(error, args.json)
    if args.json:
        print(json.dumps(reply, indent=2, ensure_ascii=False))
    else:
        print(f"{reply['verdict']} recorded for {reply['request_id']} (via {reply['via']}; "
              f"{reply['approvals']} of {reply['quorum']} approvals)")
    return 0
