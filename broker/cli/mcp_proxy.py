"""``mcp-proxy``: the broker's MCP server (``/api/mcp``) as a local stdio MCP server, for agents that
start their tools as commands (or cannot renew a token in a header). Each message is forwarded with
a fresh Entra access token from azure-identity - workload identity federation, client credentials
or a managed identity - so no long-lived token sits in the agent's configuration.

Needs ``BROKER_URL`` (the broker, https) and ``BROKER_SCOPE`` (``api://<broker app id>/.default``),
plus the identity's ``AZURE_TENANT_ID``/``AZURE_CLIENT_ID`` and one of ``AZURE_FEDERATED_TOKEN_FILE``,
``AZURE_CLIENT_SECRET`` or ``AZURE_CLIENT_CERTIFICATE_PATH`` (none: the managed identity). With
``--dev`` the token comes from the dev stack's issuer instead. Logs go to stderr; stdout is the protocol.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mcp-proxy", help="stdio MCP server that forwards to /api/mcp with fresh Entra tokens",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dev", action="store_true", help="tokens from the dev stack's issuer (python -m broker dev)")
    p.add_argument("--identity", default="devin", help="dev identity with --dev (default devin)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import anyio

    from broker.cli._client import ClientError, fail
    from broker.cli._mcp_relay import connect, relay
    from broker.settings import AgentCredentialSettings, ClientSettings

    try:
        url, source = connect(ClientSettings(), AgentCredentialSettings(), args.identity if args.dev else None)
    except ClientError as error:
        return fail(error)
    anyio.run(relay, url, source)
    return 0
