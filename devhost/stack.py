"""The local stack: Azurite, embedded PostgreSQL with demo data, the OIDC issuer (and managed
identity endpoint), the Key Vault stand-in, and the devhost serving ``function_app.py``.

``DevStack`` is used by ``python -m broker dev`` and by the end-to-end tests (with free ports and
a temporary state folder). Everything it starts listens on 127.0.0.1 and is stopped by ``stop``.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from azure.keyvault.secrets import SecretClient

from devhost._http import StandInServer
from devhost.azurite import Azurite
from devhost.certs import DevCertificates
from devhost.credentials import DevIdentityCredential
from devhost.demo import seed_demo
from devhost.identities import AUDIENCE, BROKER_APP_ID, DEV_TENANT, IDENTITIES
from devhost.keyvault import KeyVaultStandIn, keyvault_server
from devhost.kubernetes import KubernetesStandIn, catalog_target, start_demo_cluster
from devhost.oidc import DevIssuer, issuer_server
from devhost.postgres import EmbeddedPostgres
from devhost.smtp import MailSink

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_SECRET = "demo-postgres-agent"
MASKING_SECRET = "masking-key"
APPROVAL_SIGNING_SECRET = "approval-signing-key"
APPROVAL_HMAC_SECRET = "approval-hmac-key"
APPROVER_IDENTITIES = ("approver", "approver2")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Ports:
    devhost: int = 7071
    issuer: int = 7081
    keyvault: int = 7443
    blob: int = 10000
    queue: int = 10001
    table: int = 10002
    postgres: int = 54329
    smtp: int = 7025
    kubernetes: int = 7444

    @classmethod
    def free(cls) -> Ports:
        """Distinct free ports (all held open while picking, so none is handed out twice)."""
        sockets = []
        try:
            for _ in cls.__dataclass_fields__:
                s = socket.socket()
                s.bind(("127.0.0.1", 0))
                sockets.append(s)
            return cls(*(s.getsockname()[1] for s in sockets))
        finally:
            for s in sockets:
                s.close()

    def busy(self) -> list[str]:
        taken = []
        for name, port in asdict(self).items():
            with socket.socket() as s:
                # as the servers themselves bind: a port whose last connection is in TIME-WAIT
                # after a stop is free again at once; only a listening socket makes it busy
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    taken.append(f"{name}:{port}")
        return taken


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout``."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


class DevStack:
    def __init__(self, state_dir: Path, ports: Ports | None = None, *, log_statements: bool = False,
                 policy_path: Path | None = None, quiet: bool = False, durable_clock: str = "wall",
                 extra_targets: dict[str, Any] | None = None, azurite_on_disk: bool = False) -> None:
        self.state_dir = state_dir.resolve()
        self.ports = ports or Ports()
        self.log_statements = log_statements
        self.policy_path = policy_path or REPO_ROOT / "config" / "dev" / "policy.yaml"
        self.quiet = quiet
        self.durable_clock = durable_clock  # "manual": time stands still until advance_clock()
        self.extra_targets = dict(extra_targets or {})  # more catalog entries (tests)
        self.azurite_on_disk = azurite_on_disk  # state that outlives an Azurite restart (fault tests)
        self.durable_key = secrets.token_urlsafe(24)  # the devhost's durabletask system key
        self.issuer_server: StandInServer | None = None
        self.issuer: DevIssuer | None = None
        self.keyvault_server: StandInServer | None = None
        self.keyvault: KeyVaultStandIn | None = None
        self.certs: DevCertificates | None = None
        self.azurite: Azurite | None = None
        self.postgres: EmbeddedPostgres | None = None
        self.kubernetes: KubernetesStandIn | None = None
        self.devhost: subprocess.Popen[bytes] | None = None
        self.mail: MailSink | None = None
        self.env: dict[str, str] = {}

    # --- lifecycle ---
    def start(self, *, devhost: bool = True) -> DevStack:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.start_support()
            if devhost:
                self.start_devhost()
            (self.state_dir / "stack.json").write_text(json.dumps(self.describe(), indent=2))
        except BaseException:
            self.stop()
            raise
        return self

    def start_support(self) -> None:
        """Everything but the devhost: emulators, stand-ins, demo data, secrets, config files."""
        self.certs = DevCertificates(self.state_dir)
        self.start_issuer()
        self.start_keyvault()
        self.azurite = Azurite(REPO_ROOT, self.state_dir / "azurite", self.ports.blob, self.ports.queue,
                               self.ports.table, in_memory=not self.azurite_on_disk).start()
        self.postgres = EmbeddedPostgres(self.state_dir / "postgres", self.ports.postgres,
                                         log_statements=self.log_statements).start()
        agent_password = self._seed_secrets()
        seed_demo(self.postgres, agent_password)
        self.start_kubernetes()
        self._write_catalog()
        self._create_journal_storage()
        self._write_approvers()
        self.mail = MailSink(self.state_dir / "mail", self.ports.smtp).start()
        self.env = self.broker_env()

    def start_issuer(self) -> None:
        self.issuer_server, self.issuer = issuer_server(self.state_dir, self.ports.issuer)
        self.issuer_server.start_background()

    def start_keyvault(self) -> None:
        assert self.issuer and self.certs
        self.keyvault_server, self.keyvault = keyvault_server(
            self.state_dir, self.certs.server_context(), jwks_uri=self.issuer.jwks_uri,
            authority=self.issuer.authority, tenant=DEV_TENANT, readers={IDENTITIES["broker"].object_id},
            writers={IDENTITIES["operator"].object_id}, port=self.ports.keyvault)
        self.keyvault_server.start_background()

    def start_kubernetes(self) -> None:
        """The demo cluster (kmock stand-in, HTTPS) that target demo-k8s reaches with the managed identity."""
        assert self.issuer and self.certs
        self.kubernetes = start_demo_cluster(
            self.certs.server_context(), jwks_uri=self.issuer.jwks_uri, port=self.ports.kubernetes,
            issuers=(f"{self.issuer.v1_authority}/{DEV_TENANT}/", f"{self.issuer.authority}/{DEV_TENANT}/v2.0"))

    def stop_keyvault(self) -> None:
        if self.keyvault_server:
            self.keyvault_server.stop()
            self.keyvault_server = None

    def _seed_secrets(self) -> str:
        """Seed Key Vault through the real SecretClient as the dev operator; keep existing values."""
        assert self.issuer and self.keyvault_server and self.certs
        client = SecretClient(self.keyvault_server.base_url, DevIdentityCredential(self.issuer, "operator"),
                              connection_verify=str(self.certs.bundle_path))
        store = self.keyvault.store if self.keyvault else None
        existing = store.get(DEMO_SECRET, None) if store else None
        if existing:
            password = json.loads(existing["value"])["password"]
        else:
            password = secrets.token_urlsafe(18)
            client.set_secret(DEMO_SECRET, json.dumps({"username": "broker_agent", "password": password}),
                              content_type="application/json")
        for name in (MASKING_SECRET, APPROVAL_SIGNING_SECRET, APPROVAL_HMAC_SECRET):
            if not (store and store.get(name, None)):
                client.set_secret(name, secrets.token_urlsafe(32))
        client.close()
        return password

    def _create_journal_storage(self) -> None:
        """What the infra does in Azure: the journal table and container exist before the app runs."""
        from broker.journal import JournalStorage
        from broker.settings import Settings

        assert self.azurite
        storage = JournalStorage.from_settings(Settings(storage_connection_string=self.azurite.connection_string))
        storage.ensure()
        storage.close()

    def _write_catalog(self) -> None:
        catalog = {"targets": {"demo-postgres": {
            "engine": "postgres",
            "description": "Demo customers and orders (PostgreSQL, local)",
            "labels": {"env": "dev", "data": "pii"},
            "read_only": False,
            "credential": {"source": "key-vault", "secret": DEMO_SECRET},
            "connection": {"host": "127.0.0.1", "port": self.ports.postgres, "database": "demo",
                           "sslmode": "disable"},
            # email, phone and card_number are sensitive by the name rules; notes is free text with
            # pasted secrets (what `python -m broker data classify demo-postgres` finds)
            "sensitive": {"columns": [{"column": "customers.notes", "type": "free_text"}]},
        }}}
        if self.kubernetes and self.certs:
            catalog["targets"]["demo-k8s"] = catalog_target(self.kubernetes, self.certs.ca_path.read_bytes())
        catalog["targets"].update(self.extra_targets)
        (self.state_dir / "catalog.yaml").write_text(
            "# Generated by the dev stack (ports are this run's).\n" + yaml.safe_dump(catalog, sort_keys=False))

    def _write_approvers(self) -> None:
        """The dev approvers (group dba-approvers) as the broker's approvers file."""
        approvers = [{"tenant_id": DEV_TENANT, "object_id": i.object_id, "name": i.display_name, "email": i.email,
                      "groups": list(i.groups), "roles": list(i.roles)}
                     for i in (IDENTITIES[name] for name in APPROVER_IDENTITIES)]
        (self.state_dir / "approvers.yaml").write_text(
            "# Generated by the dev stack: who may approve.\n" + yaml.safe_dump({"approvers": approvers},
                                                                                sort_keys=False))

    def broker_env(self) -> dict[str, str]:
        """The Function app settings the devhost runs with."""
        assert self.issuer and self.issuer_server and self.keyvault_server and self.azurite and self.certs
        return {
            "BROKER_AUTHORITY": self.issuer.authority,
            "BROKER_V1_AUTHORITY": self.issuer.v1_authority,
            "BROKER_JWKS_URI": self.issuer.jwks_uri,
            "BROKER_ALLOWED_TENANTS": DEV_TENANT,
            "BROKER_AUDIENCES": f"{AUDIENCE},{BROKER_APP_ID}",
            "BROKER_CATALOG_PATH": str(self.state_dir / "catalog.yaml"),
            "BROKER_POLICY_PATH": str(self.policy_path),
            "BROKER_KEY_VAULT_URL": self.keyvault_server.base_url,
            "BROKER_STORAGE_CONNECTION_STRING": self.azurite.connection_string,
            "BROKER_PUBLIC_BASE_URL": f"http://127.0.0.1:{self.ports.devhost}",
            "BROKER_TASK_HUB": "devhub",
            "BROKER_APPROVERS_PATH": str(self.state_dir / "approvers.yaml"),
            "BROKER_MAIL_TRANSPORT": "smtp",
            "BROKER_MAIL_SENDER": "broker@dev.example",
            "BROKER_SMTP_HOST": "127.0.0.1",
            "BROKER_SMTP_PORT": str(self.ports.smtp),
            "BROKER_CLASSIFICATION_SCHEDULE": "0 30 2 * * *",
            "DEVHOST_DURABLE_CLOCK": self.durable_clock,
            "DEVHOST_DURABLE_KEY": self.durable_key,
            "AzureWebJobsStorage": self.azurite.connection_string,
            "IDENTITY_ENDPOINT": f"{self.issuer_server.base_url}/msi/token",
            "IDENTITY_HEADER": self.issuer.managed_identity_secret,
            "REQUESTS_CA_BUNDLE": str(self.certs.bundle_path),
            "SSL_CERT_FILE": str(self.certs.bundle_path),
        }

    def start_devhost(self, extra_env: dict[str, str] | None = None, timeout: float = 60.0) -> None:
        self.devhost = self.spawn_devhost(self.ports.devhost, extra_env, timeout=timeout)

    def spawn_devhost(self, port: int, extra_env: dict[str, str] | None = None, *,
                      timeout: float = 30.0, log_name: str = "devhost.log") -> subprocess.Popen[bytes]:
        """Start a devhost process serving function_app.py on ``port``; wait until it answers."""
        env = {**os.environ, **self.env, **(extra_env or {}), "PYTHONUNBUFFERED": "1",
               "BROKER_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"}
        log = open(self.state_dir / log_name, "ab")  # noqa: SIM115 - lives as long as the process
        process = subprocess.Popen(
            [sys.executable, "-m", "devhost", "serve", "--port", str(port)],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"devhost exited; see {self.state_dir / log_name}")
            try:
                httpx.get(f"http://127.0.0.1:{port}/admin/host/status", timeout=2).raise_for_status()
                return process
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    stop_process(process)
                    raise TimeoutError("devhost did not become ready") from None
                time.sleep(0.1)

    def kill_devhost(self) -> None:
        """SIGKILL the devhost: a crash, nothing finishes (restart it with ``start_devhost``)."""
        if self.devhost and self.devhost.poll() is None:
            self.devhost.kill()
            self.devhost.wait(10)
        self.devhost = None

    # --- the devhost's Durable engine (dev-only admin endpoints) ---
    def durable_admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"{self.base_url}/admin/durable/{path.lstrip('/')}",
                             headers={"x-functions-key": self.durable_key}, timeout=60, **kwargs)

    def advance_clock(self, seconds: float) -> None:
        """Move the manual clock (``durable_clock="manual"``); due timers fire, then wait until idle."""
        response = self.durable_admin("POST", "clock/advance", json={"seconds": seconds})
        response.raise_for_status()
        self.wait_durable_idle()

    def wait_durable_idle(self, timeout: float = 30.0) -> None:
        """Wait until no orchestration episode, activity or due timer is pending."""
        response = self.durable_admin("POST", f"idle?timeout={timeout}")
        if response.status_code != 200:
            raise TimeoutError(f"the Durable engine is still busy: {response.text}")

    def stop_devhost(self) -> None:
        if self.devhost:
            stop_process(self.devhost)
        self.devhost = None

    def stop(self) -> None:
        self.stop_devhost()
        if self.mail:
            self.mail.stop()
            self.mail = None
        if self.kubernetes:
            self.kubernetes.stop()
            self.kubernetes = None
        if self.postgres:
            self.postgres.stop()
        if self.azurite:
            self.azurite.stop()
        self.stop_keyvault()
        if self.issuer_server:
            self.issuer_server.stop()
            self.issuer_server = None

    # --- what is where ---
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.devhost}"

    def token(self, identity: str = "devin", **kwargs: Any) -> str:
        assert self.issuer
        return self.issuer.token(identity, **kwargs)

    def describe(self) -> dict[str, Any]:
        assert self.issuer_server and self.keyvault_server and self.azurite and self.postgres
        return {
            "broker_url": self.base_url,
            "issuer_url": self.issuer_server.base_url,
            "key_vault_url": self.keyvault_server.base_url,
            "azurite": {k: f"http://127.0.0.1:{v}" for k, v in self.azurite.ports.items()},
            "postgres": f"postgresql://127.0.0.1:{self.ports.postgres}/demo",
            "kubernetes": self.kubernetes.base_url if self.kubernetes else "",
            "storage_connection_string": self.azurite.connection_string,
            "state_dir": str(self.state_dir),
            "mail_dir": str(self.state_dir / "mail"),
            "smtp": f"127.0.0.1:{self.ports.smtp}",
            "ca_bundle": str(self.certs.bundle_path) if self.certs else "",
            "tenant": DEV_TENANT,
            "audience": AUDIENCE,
            "broker_env": {k: v for k, v in self.env.items() if k.startswith(("BROKER_", "IDENTITY_"))
                           or k in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")},
            "durable": {"task_hub": "devhub", "clock": self.durable_clock, "system_key": self.durable_key,
                        "webhooks": f"{self.base_url}/runtime/webhooks/durabletask",
                        "admin": f"{self.base_url}/admin/durable"},
            "pids": {"devhost": self.devhost.pid if self.devhost else None,
                     "postgres": self.postgres.pid(),
                     "azurite": self.azurite.process.pid if self.azurite.process else None,
                     "stack": os.getpid()},
        }
