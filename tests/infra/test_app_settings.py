"""Every setting the broker reads is set in Azure, identity-based, and no setting carries a secret.

The list of settings comes from the code (``Settings.model_fields``), so a new field fails this
test until it is either wired in infra/main.bicep (``brokerSettings``) or listed below as safe to
leave at its default. That is the one place to touch when a capability adds a setting.
"""

from __future__ import annotations

import json
import re

from infra_bicep import INFRA, ROOT, module_call_for, render, resolve_object, resource

from broker.catalog import load_catalog
from broker.policy import Policy
from broker.settings import Settings

# Fields whose defaults are right in Azure: Entra's public-cloud issuers and key set, and tuning.
DEFAULTS_ARE_RIGHT_IN_AZURE = {
    "authority", "v1_authority", "jwks_uri",
    "token_leeway_seconds", "jwks_min_refresh_seconds", "jwks_max_age_seconds",
    "secret_cache_ttl_seconds",
    "max_body_bytes", "target_concurrency", "target_queue_wait_seconds",  # fair share: tuning
    # approvals: tuning, and the transports Azure does not use (mail goes through ACS by identity;
    # a Logic App is opt-in by naming its Key Vault secret)
    "approval_hmac_window_seconds", "approval_automation_role", "approval_form_seconds",
    "smtp_host", "smtp_port", "smtp_starttls", "smtp_username", "smtp_password", "acs_connection_string",
    "logic_app_url_secret", "approval_notify_channels",
    "classification_sample_rows", "classification_timeout_ms",  # data classification: tuning
}
# Fields that must stay unset in Azure.
MUST_NOT_BE_SET = {
    "storage_connection_string": "storage is reached by managed identity (BROKER_TABLE_ENDPOINT/BLOB_ENDPOINT)",
}
# Values that are identifiers, not secrets, although their names say "connection string".
NOT_SECRETS = {
    "APPLICATIONINSIGHTS_CONNECTION_STRING": "names the component; local auth is off, so ingestion needs a token",
}
SECRET_MARKERS = ("listkeys(", "listconnectionstrings(", "accountkey=", "sharedaccesssignature", "sig=",
                  "password", "clientsecret", "primarykey", "secondarykey", "@microsoft.keyvault(")


def app_settings() -> dict[str, str]:
    """The Function app's settings: the appsettings resource, with main.bicep's arguments resolved."""
    config = resource("Microsoft.Web/sites/config", "appSettings")
    assert config.body["name"] == "appsettings"
    call = module_call_for(config.file)
    resolved = resolve_object(config.body["properties"], config.file, call["params"])
    return {name: str(render(value)) for name, value in resolved.items()}


def env_name(field: str) -> str:
    info = Settings.model_fields[field]
    alias = info.validation_alias
    if isinstance(alias, str):
        return alias.upper()
    return f"{Settings.model_config.get('env_prefix', '')}{field}".upper()


def test_every_setting_the_broker_reads_is_set() -> None:
    settings = app_settings()
    required = set(Settings.model_fields) - DEFAULTS_ARE_RIGHT_IN_AZURE - set(MUST_NOT_BE_SET)
    missing = sorted(env_name(field) for field in required if env_name(field) not in settings)
    assert not missing, (f"set these in infra/main.bicep (brokerSettings), or add them to "
                         f"DEFAULTS_ARE_RIGHT_IN_AZURE in this test if the default is right: {missing}")


def test_the_exception_lists_name_real_settings() -> None:
    stale = (DEFAULTS_ARE_RIGHT_IN_AZURE | set(MUST_NOT_BE_SET)) - set(Settings.model_fields)
    assert not stale, f"no longer fields of Settings: {sorted(stale)}"


def test_every_broker_app_setting_is_a_setting_the_code_reads() -> None:
    known = {env_name(field) for field in Settings.model_fields}
    typos = sorted(name for name in app_settings() if name.startswith("BROKER_") and name not in known)
    assert not typos, f"app settings that broker/settings.py does not read: {typos}"


def test_forbidden_settings_are_absent() -> None:
    settings = app_settings()
    for field, why in MUST_NOT_BE_SET.items():
        assert env_name(field) not in settings, why
    assert "AzureWebJobsStorage" not in settings, "a plain AzureWebJobsStorage is a connection string"
    # Flex Consumption takes the runtime from functionAppConfig and rejects these two.
    assert "FUNCTIONS_WORKER_RUNTIME" not in settings
    assert "FUNCTIONS_EXTENSION_VERSION" not in settings


def test_storage_and_identity_settings_are_identity_based() -> None:
    settings = app_settings()
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    assert settings["AzureWebJobsStorage__clientId"] == "identityClientId"
    for service in ("blob", "queue", "table"):
        assert settings[f"AzureWebJobsStorage__{service}ServiceUri"] == \
            f"storageAccount.properties.primaryEndpoints.{service}"
    # DefaultAzureCredential in broker/runtime.py picks the user-assigned identity through this.
    assert settings["AZURE_CLIENT_ID"] == "identityClientId"
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == "ClientId=${identityClientId};Authorization=AAD"
    assert settings["BROKER_TABLE_ENDPOINT"] == "storage.outputs.tableEndpoint"
    assert settings["BROKER_BLOB_ENDPOINT"] == "storage.outputs.blobEndpoint"
    assert settings["BROKER_KEY_VAULT_URL"] == "keyVault.outputs.uri"


def test_no_setting_carries_a_secret() -> None:
    for name, value in app_settings().items():
        if name in NOT_SECRETS:
            continue
        lowered = value.lower()
        assert not any(marker in lowered for marker in SECRET_MARKERS), f"{name} = {value}"


def test_host_json_placeholders_are_app_settings() -> None:
    placeholders = set(re.findall(r"%(\w+)%", (ROOT / "host.json").read_text()))
    assert placeholders, "host.json names the task hub through %BROKER_TASK_HUB%"
    assert placeholders <= set(app_settings()), placeholders - set(app_settings())


def test_the_generated_secrets_are_the_ones_the_broker_reads() -> None:
    main = (INFRA / "main.bicep").read_text()
    assert ("var generatedSecretNames = [names.maskingKeySecret, names.approvalSigningSecret, "
            "names.approvalHmacSecret]") in main
    settings = app_settings()
    assert settings["BROKER_MASKING_KEY_SECRET"] == "names.maskingKeySecret"
    assert settings["BROKER_APPROVAL_SIGNING_SECRET"] == "names.approvalSigningSecret"
    assert settings["BROKER_APPROVAL_HMAC_SECRET"] == "names.approvalHmacSecret"


def test_deployed_catalog_and_policy_exist_and_load() -> None:
    values = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    catalog = re.fullmatch(r"\$\{BROKER_CATALOG_PATH=(.+)\}", values["catalogPath"]["value"]).group(1)
    policy = re.fullmatch(r"\$\{BROKER_POLICY_PATH=(.+)\}", values["policyPath"]["value"]).group(1)
    assert load_catalog(ROOT / catalog).targets == {}
    Policy.load(ROOT / policy)
    ignored = [line.strip() for line in (ROOT / ".funcignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    assert "config/dev/" in ignored  # the dev stack's files stay home...
    assert not {"config", "config/", "config/azure/"} & set(ignored)  # ...the deployed ones ship
