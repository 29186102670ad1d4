"""``token``: print an access token for a dev identity (from the dev stack's issuer)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("token", help="print a dev access token", description=__doc__)
    p.add_argument("--dev", action="store_true", required=True,
                   help="from the dev stack's issuer (the only source this command knows)")
    p.add_argument("--identity", default="devin",
                   help="dev identity: devin, approver, approver2, auditor, operator, outsider")
    p.add_argument("--v1", action="store_true", help="an Entra v1-format token (sts.windows.net issuer)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from broker.cli._client import ClientError, dev_stack, dev_token, fail
    from broker.settings import ClientSettings

    stack = dev_stack(ClientSettings())
    if not stack:
        return fail(ClientError("dev_stack_down", "no dev stack found; start it with `python -m broker dev`"))
    try:
        print(dev_token(stack, args.identity, version="1.0" if args.v1 else "2.0"))
    except ClientError as error:
        return fail(error)
    return 0
