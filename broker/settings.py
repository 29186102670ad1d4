"""The broker's configuration: the one place that reads environment variables.

In Azure these are Function app settings; locally the dev stack sets them. Every other module
receives a ``Settings`` (or the part of it that it needs) instead of reading ``os.environ``,
so tests construct ``Settings(...)`` directly.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

CommaList = Annotated[tuple[str, ...], NoDecode]
NotifyChannel = Literal["email", "logic-app"]
APP_ROOT = Path(__file__).resolve().parent.parent
"""Where function_app.py lives; relative file settings resolve against it, not the working dir."""


def _split(value: object) -> object:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


class Settings(BaseSettings):
    """Typed broker settings; env names are the field names upper-cased with ``BROKER_``."""

    model_config = SettingsConfigDict(env_prefix="BROKER_", extra="ignore", frozen=True)

    # --- identity (Entra ID or any OIDC issuer that signs RS256/ES256) ---
    authority: str = "https://login.microsoftonline.com"
    """v2 issuer base: tokens carry ``{authority}/{tenant}/v2.0``."""
    v1_authority: str = "https://sts.windows.net"
    """v1 issuer base: tokens carry ``{v1_authority}/{tenant}/``."""
    allowed_tenants: CommaList = ()
    audiences: CommaList = ()
    jwks_uri: str = ""
    """Defaults to ``{authority}/common/discovery/v2.0/keys`` (Entra's key set)."""
    token_leeway_seconds: int = 60
    jwks_min_refresh_seconds: float = 30.0
    jwks_max_age_seconds: float = 3600.0

    # --- configuration files ---
    catalog_path: Path = Path("config/azure/catalog.yaml")
    policy_path: Path = Path("config/azure/policy.yaml")

    # --- target credentials ---
    key_vault_url: str = ""
    secret_cache_ttl_seconds: float = 300.0

    # --- journal storage: a connection string (Azurite) or endpoints reached by managed identity ---
    storage_connection_string: SecretStr = SecretStr("")
    table_endpoint: str = ""
    blob_endpoint: str = ""
    journal_table: str = "journal"
    journal_container: str = "journal"

    # --- request limits ---
    max_body_bytes: int = 256 * 1024
    target_concurrency: int = 4
    """Commands all callers together may run at once on one target (a catalog entry may set its own)."""
    target_queue_wait_seconds: float = 3.0
    """How long a call waits for a free slot of a busy target before 503 ``target_busy``."""

    # --- masking ---
    masking_key_secret: str = "masking-key"
    """Key Vault secret holding the key of the masked values' keyed hash."""

    # --- data classification (discovery of sensitive columns, broker/classification) ---
    classification_table: str = "classification"
    """Signed classification results: one partition per target, one row per column and the run."""
    classification_schedule: str = "0 30 2 * * *"
    """NCRONTAB schedule of the ``data_classify`` timer (six fields, UTC); the timer reads it as
    ``%BROKER_CLASSIFICATION_SCHEDULE%``, so the app setting must exist where the app runs."""
    classification_sample_rows: int = 100
    """Rows sampled per table by each run (``python -m broker data classify --sample N`` overrides)."""
    classification_timeout_ms: int = 5000
    """Statement timeout of each table's sample."""

    # --- durable task hub ---
    task_hub: str = "brokerhub"

    public_base_url: str = ""
    """How agents and approvers reach the broker (links in 202 responses and emails)."""

    # --- approvals and just-in-time grants ---
    approvals_table: str = "approvals"
    """Approval requests, their decisions and the used tokens (one partition per request)."""
    grants_table: str = "grants"
    """Just-in-time grants (one partition per grantee), read by the execute path."""
    results_container: str = "approval-results"
    """Masked results of approved commands too large to keep in the request's Table row."""
    approvers_path: Path = Path("config/azure/approvers.yaml")
    """Who may approve: people with their Entra ids, emails, groups and roles."""
    approval_signing_secret: str = "approval-signing-key"
    """Key Vault secret holding the HMAC key that signs approval links and form nonces."""
    approval_hmac_secret: str = "approval-hmac-key"
    """Key Vault secret shared with an automation (Logic App) that signs decision bodies."""
    approval_hmac_window_seconds: int = 300
    """How old (or how far in the future) a signed automation decision may be."""
    approval_automation_role: str = "Broker.ApproverDelegate"
    """App role an application's Entra token needs to decide on behalf of a named approver (a Logic
    App). Never ``Broker.Caller`` or ``Broker.Approver``: delegating is its own, documented role."""
    approval_form_seconds: int = 1800
    """How long an opened approval page's form stays valid (its CSRF nonce)."""

    # --- notification (approval emails) ---
    mail_transport: Literal["smtp", "acs", "none"] = "none"
    """``acs`` (Azure Communication Services Email) in Azure, ``smtp`` locally, ``none`` to send nothing."""
    mail_sender: str = "broker@localhost"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_starttls: bool = False
    smtp_username: str = ""
    smtp_password: SecretStr = SecretStr("")
    acs_endpoint: str = ""
    """``https://<resource>.communication.azure.com``, reached with the broker's managed identity."""
    acs_connection_string: SecretStr = SecretStr("")
    """Alternative to ``acs_endpoint``: an ACS connection string (keep it in Key Vault references)."""
    logic_app_url_secret: str = ""
    """Key Vault secret holding a Logic App HTTP trigger URL; when set, approvers are asked through it."""
    approval_notify_channels: Annotated[tuple[NotifyChannel, ...], NoDecode] = ()
    """Ask approvers on several channels at once, e.g. ``email,logic-app``. Empty: the Logic App when
    ``logic_app_url_secret`` is set, otherwise mail (``mail_transport``). A named channel must be configured."""

    @field_validator("approval_automation_role")
    @classmethod
    def _delegate_role_is_its_own(cls, value: str) -> str:
        if value.strip() in ("", "Broker.Caller", "Broker.Approver"):
            raise ValueError("the delegate role must be its own app role (not Broker.Caller or Broker.Approver)")
        return value.strip()

    @field_validator("catalog_path", "policy_path", "approvers_path")
    @classmethod
    def _from_app_root(cls, value: Path) -> Path:
        return value if value.is_absolute() else APP_ROOT / value

    @field_validator("allowed_tenants", "audiences", "approval_notify_channels", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        return _split(value)

    @model_validator(mode="after")
    def _notify_channels_are_configured(self) -> Settings:
        """A channel named but not configured would ask nobody while the journal says it asked."""
        if len(set(self.approval_notify_channels)) != len(self.approval_notify_channels):
            raise ValueError("approval_notify_channels names a channel twice")
        if "email" in self.approval_notify_channels and self.mail_transport == "none":
            raise ValueError("approval_notify_channels names email, but mail_transport is none")
        if "logic-app" in self.approval_notify_channels and not self.logic_app_url_secret:
            raise ValueError("approval_notify_channels names logic-app, but logic_app_url_secret is empty")
        return self

    @property
    def effective_jwks_uri(self) -> str:
        return self.jwks_uri or f"{self.authority.rstrip('/')}/common/discovery/v2.0/keys"

    def issuers(self) -> dict[str, str]:
        """Accepted issuer string -> tenant id, in both Entra formats."""
        accepted: dict[str, str] = {}
        for tenant in self.allowed_tenants:
            accepted[f"{self.authority.rstrip('/')}/{tenant}/v2.0"] = tenant
            accepted[f"{self.v1_authority.rstrip('/')}/{tenant}/"] = tenant
        return accepted


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()


class ClientSettings(BaseSettings):
    """The agent-side CLI's settings (``BROKER_URL``, ``BROKER_TOKEN``); empty means "the dev stack"."""

    model_config = SettingsConfigDict(env_prefix="BROKER_", extra="ignore", frozen=True)
    url: str = ""
    token: SecretStr = SecretStr("")
    dev_state_dir: Path = Path(".broker/dev")
    """Where ``python -m broker dev`` keeps its state and ``stack.json`` (``BROKER_DEV_STATE_DIR``)."""
    scope: str = ""
    """The scope ``mcp-proxy`` asks Entra for (``BROKER_SCOPE``, e.g. ``api://<broker app id>/.default``).
    Set by whoever deploys the agent, never read from the broker's metadata: a server that named the
    scope could collect tokens for another API."""
    instance_discovery: bool = True
    """MSAL's authority validation against Entra (``BROKER_INSTANCE_DISCOVERY``); off only for an
    authority Microsoft does not know (the dev stack's stand-in)."""


class AgentCredentialSettings(BaseSettings):
    """How ``mcp-proxy`` proves the agent's identity to Entra, under azure-identity's standard names:
    ``AZURE_FEDERATED_TOKEN_FILE`` (workload identity federation, e.g. a Kubernetes service-account
    token), else ``AZURE_CLIENT_SECRET`` or ``AZURE_CLIENT_CERTIFICATE_PATH`` (client credentials),
    else a managed identity (``AZURE_CLIENT_ID`` picks a user-assigned one)."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)
    azure_tenant_id: str = ""
    azure_client_id: str = ""
    azure_client_secret: SecretStr = SecretStr("")
    azure_client_certificate_path: str = ""
    azure_federated_token_file: str = ""
    azure_authority_host: str = "https://login.microsoftonline.com"


class TelemetrySettings(BaseSettings):
    """OpenTelemetry export to Application Insights (``broker/telemetry.py``), under the standard
    Azure names: the platform sets ``APPLICATIONINSIGHTS_CONNECTION_STRING``; ``AZURE_CLIENT_ID``
    is the user-assigned identity that authenticates ingestion (local auth is off)."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)
    applicationinsights_connection_string: SecretStr = SecretStr("")
    azure_client_id: str = ""
