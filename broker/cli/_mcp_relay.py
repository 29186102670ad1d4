"""The relay behind ``mcp-proxy``: the SDK's stdio server transport on one side, its Streamable HTTP
client transport on the other, messages passed through unchanged (requests, responses, progress
notifications), and an ``httpx2.Auth`` that puts a current token on every POST."""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncGenerator, Callable
from ipaddress import ip_address
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
import httpx2
from azure.core.credentials import TokenCredential
from mcp.client.streamable_http import streamable_http_client
from mcp.server.stdio import stdio_server

from broker.cli._client import ClientError, dev_stack, dev_token
from broker.settings import AgentCredentialSettings, ClientSettings

log = logging.getLogger("broker.mcp_proxy")
TokenSource = Callable[[], str]


class BearerAuth(httpx2.Auth):
    """A token per request from ``source`` (azure-identity caches it and renews it before expiry);
    the call runs in a thread because the credential's HTTP is synchronous."""

    def __init__(self, source: TokenSource) -> None:
        self._source = source

    async def async_auth_flow(self, request: httpx2.Request) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        token = await anyio.to_thread.run_sync(self._source)
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:  # the broker's problem says why; the client gets a JSON-RPC error
            log.error("the broker refused the token (401): %s", response.headers.get("www-authenticate", ""))


def credential(agent: AgentCredentialSettings, client: ClientSettings) -> TokenCredential:
    """The one credential the environment configures, in azure-identity's order of preference."""
    from azure.identity import (
        CertificateCredential,
        ClientSecretCredential,
        ManagedIdentityCredential,
        WorkloadIdentityCredential,
    )

    msal = {"authority": agent.azure_authority_host, "disable_instance_discovery": not client.instance_discovery}
    needs_app = agent.azure_federated_token_file or agent.azure_client_secret.get_secret_value() or \
        agent.azure_client_certificate_path
    if needs_app and not (agent.azure_tenant_id and agent.azure_client_id):
        raise ClientError("no_credential", "set AZURE_TENANT_ID and AZURE_CLIENT_ID for the agent's app registration")
    if agent.azure_federated_token_file:
        return WorkloadIdentityCredential(tenant_id=agent.azure_tenant_id, client_id=agent.azure_client_id,
                                          token_file_path=agent.azure_federated_token_file, **msal)
    if agent.azure_client_secret.get_secret_value():
        return ClientSecretCredential(agent.azure_tenant_id, agent.azure_client_id,
                                      agent.azure_client_secret.get_secret_value(), **msal)
    if agent.azure_client_certificate_path:
        return CertificateCredential(agent.azure_tenant_id, agent.azure_client_id,
                                     agent.azure_client_certificate_path, **msal)
    return ManagedIdentityCredential(client_id=agent.azure_client_id or None)


def token_source(client: ClientSettings, agent: AgentCredentialSettings,
                 dev_identity: str | None = None) -> tuple[str, TokenSource]:
    """The ``/api/mcp`` URL and where its tokens come from; refuses what would leak a token."""
    if dev_identity is not None:
        stack = dev_stack(client)
        if not stack:
            raise ClientError("dev_stack_down", "no dev stack found; start it with `python -m broker dev`")
        url = client.url or stack["broker_url"]
        return mcp_url(url), lambda: dev_token(stack, dev_identity)
    if not client.url:
        raise ClientError("no_broker", "set BROKER_URL to the broker (https://<app>.azurewebsites.net)")
    if not client.scope.endswith("/.default"):
        raise ClientError("no_scope", "set BROKER_SCOPE to the broker's scope, api://<broker app id>/.default "
                          "(never taken from the server: it could ask for a token to another API)")
    cred = credential(agent, client)
    scope = client.scope
    return mcp_url(client.url), lambda: cred.get_token(scope).token


def connect(client: ClientSettings, agent: AgentCredentialSettings,
            dev_identity: str | None = None) -> tuple[str, TokenSource]:
    """``token_source`` plus one token now: a credential that cannot get one fails at start-up with
    Entra's reason, not in the middle of the agent's session."""
    url, source = token_source(client, agent, dev_identity)
    try:
        source()
    except ClientError:
        raise
    except Exception as exc:  # azure-identity's ClientAuthenticationError and kin: the message says why
        raise ClientError("no_token", f"could not get a token for the broker: {exc}") from exc
    return url, source


def mcp_url(base: str) -> str:
    """``<base>/api/mcp``; a bearer token only travels over TLS, or to this machine."""
    parts = urlsplit(base)
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise ClientError("insecure_url", f"BROKER_URL must be https:// (http only to this machine): {base}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ClientError("insecure_url", "BROKER_URL is the broker's base URL, without credentials, query or fragment")
    return f"{base.rstrip('/')}/api/mcp"


async def relay(url: str, source: TokenSource) -> None:
    """Stdin's JSON-RPC messages to ``url`` and the answers back to stdout until stdin closes."""
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="mcp-proxy: %(message)s")
    timeout = httpx2.Timeout(30, read=300)  # a wait_for_request answer takes up to a minute
    async with httpx2.AsyncClient(auth=BearerAuth(source), timeout=timeout,
                                  headers={"User-Agent": "broker-mcp-proxy/0.1"}) as http, \
            streamable_http_client(url, http_client=http, terminate_on_close=False) as (remote_in, remote_out), \
            stdio_server() as (local_in, local_out), anyio.create_task_group() as tasks:

        async def upstream() -> None:
            async for message in local_in:
                if isinstance(message, Exception):  # a line that is not JSON-RPC: nothing to forward
                    log.error("ignored a message from the client: %s", message)
                    continue
                await remote_out.send(message)
            tasks.cancel_scope.cancel()  # the client closed stdin: it is gone

        async def downstream() -> None:
            async for message in remote_in:
                if isinstance(message, Exception):
                    log.error("the broker's answer could not be read: %s", message)
                    continue
                await local_out.send(message)

        tasks.start_soon(upstream)
        tasks.start_soon(downstream)
