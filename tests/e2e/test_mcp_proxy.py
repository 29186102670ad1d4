"""``python -m broker mcp-proxy`` on the dev stack, driven by the official ``mcp`` client over stdio:
the proxy gets its tokens from an Entra-shaped token endpoint (devhost/entra_login.py, HTTPS) through
azure-identity's real credentials - a client secret, or a federated assertion (workload identity
federation) - and forwards to ``/api/mcp``; the broker sees the agent's own identity. Refused: what
Entra refuses, and anything that would send a token somewhere it should not go."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from broker.cli._client import ClientError
from broker.cli._mcp_relay import connect
from broker.settings import AgentCredentialSettings, ClientSettings
from devhost.entra_login import EXCHANGE_AUDIENCE, AppRegistration, EntraLogin, entra_login_server
from devhost.identities import AUDIENCE, DEV_TENANT, IDENTITIES
from devhost.stack import REPO_ROOT
from tests.e2e.test_mcp import reader

pytestmark = pytest.mark.e2e

SECRET = secrets.token_urlsafe(24)
CLUSTER = "https://oidc.cluster.dev.example/agents"  # a Kubernetes cluster's service-account issuer
SUBJECT = "system:serviceaccount:agents:devin2"


@pytest.fixture(scope="module")
def login(stack) -> Iterator[EntraLogin]:
    apps = {IDENTITIES["devin"].app_id: AppRegistration("devin", secret=SECRET),
            IDENTITIES["devin2"].app_id: AppRegistration("devin2", federated_issuer=CLUSTER,
                                                         federated_subject=SUBJECT)}
    server, entra = entra_login_server(stack.issuer, stack.certs.server_context(), apps)
    server.start_background()
    entra.base_url = server.base_url  # type: ignore[attr-defined]
    yield entra
    server.stop()


def proxy_env(stack, login: EntraLogin, **extra: str) -> dict[str, str]:
    env = {"BROKER_URL": stack.base_url, "BROKER_SCOPE": f"{AUDIENCE}/.default", "BROKER_INSTANCE_DISCOVERY": "false",
           "AZURE_AUTHORITY_HOST": login.base_url, "AZURE_TENANT_ID": DEV_TENANT,  # type: ignore[attr-defined]
           "AZURE_CLIENT_ID": IDENTITIES["devin"].app_id, "AZURE_CLIENT_SECRET": SECRET,
           "REQUESTS_CA_BUNDLE": str(stack.certs.bundle_path), "SSL_CERT_FILE": str(stack.certs.bundle_path),
           "PATH": os.environ["PATH"], "PYTHONPATH": str(REPO_ROOT), "BROKER_DEV_STATE_DIR": "/nonexistent"}
    env.update(extra)
    return {k: v for k, v in env.items() if v != ""}


def through_proxy(env: dict[str, str], fn: Callable[[ClientSession], Awaitable[Any]], *args: str) -> Any:
    """Start the proxy as the agent would (a command speaking MCP on stdio) and run ``fn(session)``."""
    params = StdioServerParameters(command=sys.executable, args=["-m", "broker", "mcp-proxy", *args], env=env,
                                   cwd=str(REPO_ROOT))

    async def main() -> Any:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await asyncio.wait_for(session.initialize(), 60)
            return await fn(session)

    return asyncio.run(main())


def federated_token(key: Any = None, **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": CLUSTER, "sub": SUBJECT, "aud": [EXCHANGE_AUDIENCE], "iat": now, "exp": now + 600, **claims}
    return jwt.encode(body, key, algorithm="RS256")


def test_a_client_secret_agent_gets_masked_rows_as_itself_and_the_token_is_reused_until_renewal(stack, login):
    before = len(login.issued)

    async def session_work(s: ClientSession) -> tuple[Any, Any]:
        tools = await s.list_tools()
        result = await s.call_tool("query", {"target": "demo-postgres", "reason": "proxy check",
                                             "sql": "SELECT id, email FROM customers WHERE id < 3 ORDER BY id"})
        return tools, result

    tools, result = through_proxy(proxy_env(stack, login), session_work)
    names = {t.name: t for t in tools.tools}
    assert names["query"].annotations.read_only_hint is True and names["change"].annotations.destructive_hint
    assert result.is_error is False, result
    body = result.structured_content
    assert body["masked"] == {"email": 2} and all(r[1].startswith("[email:") for r in body["rows"])
    stored = reader(stack).by_request(body["request_id"])
    assert {s.record.principal["object_id"] for s in stored} == {IDENTITIES["devin"].object_id}
    assert {s.record.client["channel"] for s in stored} == {"mcp"}
    issued = login.issued[before:]
    # one token for the start-up check and three POSTs (initialize, tools/list, tools/call): azure-identity's cache
    assert [i["identity"] for i in issued] == ["devin"], issued
    login.lifetime = 120  # inside MSAL's five-minute refresh margin: every request renews
    try:
        before = len(login.issued)
        through_proxy(proxy_env(stack, login), lambda s: s.list_tools())
        assert len(login.issued) - before >= 3, login.issued[before:]
    finally:
        login.lifetime = 3600


def test_workload_identity_federation_signs_in_as_the_federated_app(stack, login, tmp_path):
    token_file = tmp_path / "sa-token"
    token_file.write_text(federated_token(stack.issuer.rsa_key))
    env = proxy_env(stack, login, AZURE_CLIENT_ID=IDENTITIES["devin2"].app_id, AZURE_CLIENT_SECRET="",
                    AZURE_FEDERATED_TOKEN_FILE=str(token_file))
    progress: list[float] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append(done)

    async def work(s: ClientSession) -> tuple[Any, Any, Any]:
        held = await s.call_tool("change", {"target": "demo-postgres", "reason": "proxy federation",
                                            "sql": "UPDATE customers SET notes = notes WHERE id = 2"})
        rid = held.structured_content["request_id"]
        waited = await s.call_tool("wait_for_request", {"request_id": rid, "timeout_seconds": 2},
                                   progress_callback=on_progress)
        return held, waited, await s.call_tool("cancel_request", {"request_id": rid})

    held, waited, cancelled = through_proxy(env, work)
    assert held.structured_content["status"] == "pending", held
    assert waited.structured_content["status"] == "pending" and progress, (waited, progress)
    assert cancelled.structured_content["status"] == "cancelled", cancelled
    stored = reader(stack).by_request(held.structured_content["request_id"])
    assert {s.record.principal["object_id"] for s in stored} == {IDENTITIES["devin2"].object_id}


def connect_in_process(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> ClientError:
    """What the proxy does before it reads stdin (settings, credential, a first token), here in the
    test process against the same login endpoint: it must refuse, and request no token it should not."""
    for name in list(os.environ):
        if name.startswith(("AZURE_", "BROKER_", "IDENTITY_", "MSI_")):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ClientError) as refusal:
        connect(ClientSettings(), AgentCredentialSettings())
    return refusal.value


@pytest.mark.parametrize("spelling", ["other subject", "other issuer", "other audience", "expired",
                                      "signed by another key", "no federation for this app"])
def test_a_federated_assertion_entra_would_refuse_gets_no_token(stack, login, tmp_path, monkeypatch, spelling):
    key, claims, app = stack.issuer.rsa_key, {}, "devin2"
    if spelling == "other subject":
        claims = {"sub": "system:serviceaccount:agents:intruder"}
    elif spelling == "other issuer":
        claims = {"iss": "https://oidc.elsewhere.example/"}
    elif spelling == "other audience":
        claims = {"aud": [AUDIENCE]}
    elif spelling == "expired":
        claims = {"exp": int(time.time()) - 600, "iat": int(time.time()) - 1200}
    elif spelling == "signed by another key":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        app = "devin"
    token_file = tmp_path / "sa-token"
    token_file.write_text(federated_token(key, **claims))
    before = len(login.issued)
    error = connect_in_process(proxy_env(stack, login, AZURE_CLIENT_ID=IDENTITIES[app].app_id, AZURE_CLIENT_SECRET="",
                                         AZURE_FEDERATED_TOKEN_FILE=str(token_file)), monkeypatch)
    assert error.code == "no_token" and "AADSTS700" in error.detail, error.detail
    assert len(login.issued) == before


@pytest.mark.parametrize(("extra", "code", "reason"), [
    ({"AZURE_CLIENT_SECRET": "wrong"}, "no_token", "AADSTS7000215"),
    ({"AZURE_TENANT_ID": "00000000-0000-4000-8000-000000000000"}, "no_token", "Unable to get authority configuration"),
    ({"BROKER_SCOPE": "https://management.azure.com/.default"}, "no_token", "AADSTS70011"),
    ({"BROKER_SCOPE": ""}, "no_scope", ""),
    ({"BROKER_SCOPE": "api://x"}, "no_scope", ""),
    ({"BROKER_URL": ""}, "no_broker", ""),
    ({"BROKER_URL": "http://broker.example.com"}, "insecure_url", ""),
    ({"BROKER_URL": "http://10.0.0.5:7071"}, "insecure_url", ""),
    ({"BROKER_URL": "HTTP://broker.example.com"}, "insecure_url", ""),
    ({"BROKER_URL": "ftp://127.0.0.1"}, "insecure_url", ""),
    ({"BROKER_URL": "https://agent:pw@broker.example.com"}, "insecure_url", ""),
    ({"BROKER_URL": "https://broker.example.com/?code=1"}, "insecure_url", ""),
    ({"AZURE_TENANT_ID": ""}, "no_credential", ""),
], ids=lambda v: v if isinstance(v, str) else "-".join(f"{k}={w}" for k, w in v.items()))
def test_a_configuration_that_would_leak_or_cannot_work_is_refused(stack, login, monkeypatch, extra, code, reason):
    before = len(login.issued)
    error = connect_in_process(proxy_env(stack, login, **extra), monkeypatch)
    assert error.code == code and reason in error.detail, error.render()
    assert len(login.issued) == before


def test_the_proxy_that_cannot_get_a_token_exits_before_speaking(stack, login):
    done = subprocess.run([sys.executable, "-m", "broker", "mcp-proxy"], cwd=REPO_ROOT, input="",
                          env=proxy_env(stack, login, AZURE_CLIENT_SECRET="wrong"), capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1 and done.stdout == "", done
    assert "error no_token" in done.stderr and "AADSTS7000215" in done.stderr and "wrong" not in done.stderr


def test_the_dev_mode_uses_the_dev_issuer(stack, login):
    env = proxy_env(stack, login, AZURE_CLIENT_SECRET="", AZURE_CLIENT_ID="", AZURE_TENANT_ID="",
                    BROKER_URL="", BROKER_DEV_STATE_DIR=str(Path(stack.state_dir)))
    before = len(login.issued)
    targets = through_proxy(env, lambda s: s.call_tool("list_targets", {}), "--dev")
    assert targets.is_error is False and {t["name"] for t in targets.structured_content["targets"]} >= {"demo-postgres"}
    assert len(login.issued) == before
