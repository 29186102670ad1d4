"""What `azd up` creates, checked from the Bicep itself: locked-down storage, the WORM journal,
exactly the roles the broker needs, Entra-only auth everywhere, and wiring that a compiler would
otherwise catch (module parameters, azd parameters)."""

from __future__ import annotations

import json
import re

import pytest
from infra_bicep import INFRA, MAIN, ROOT, bicep_files, modules, parse, render, resource, resources

# --- parsing and wiring (what `bicep build` would reject) ---


def test_every_bicep_file_parses() -> None:
    files = bicep_files()
    assert {f.relative_to(INFRA).as_posix() for f in files} >= {
        "main.bicep", "app/api.bicep", "app/storage.bicep", "app/keyvault.bicep", "app/rbac.bicep",
        "app/monitoring.bicep", "app/email.bicep", "app/identity.bicep", "app/network.bicep",
        "app/private-endpoints.bicep"}
    for path in files:
        assert parse(path)["resources"] or parse(path).get("modules"), path


def test_main_is_subscription_scoped_and_creates_the_resource_group() -> None:
    assert parse(MAIN)["globals"]["scope"]["value"] == "subscription"
    assert resource("Microsoft.Resources/resourceGroups").body["tags"] == "tags"


@pytest.mark.parametrize("symbol", sorted(modules()))
def test_module_calls_match_module_parameters(symbol: str) -> None:
    call = modules()[symbol]
    module_path = INFRA / call["path"]
    assert module_path.is_file(), call["path"]
    declared = parse(module_path)["parameters"]
    passed = set(call["params"])
    assert passed <= set(declared), f"{symbol} passes unknown parameters {passed - set(declared)}"
    required = {name for name, spec in declared.items() if spec["default"] is None}
    assert required <= passed, f"{symbol} misses required parameters {required - passed}"


def test_module_outputs_that_main_reads_exist() -> None:
    main_text = MAIN.read_text()
    for symbol, call in modules().items():
        outputs = set(parse(INFRA / call["path"]).get("outputs", {}))
        for used in set(re.findall(rf"\b{symbol}\.outputs\.(\w+)", main_text)):
            assert used in outputs, f"main.bicep reads {symbol}.outputs.{used}, which {call['path']} lacks"


def test_azd_parameters_file_matches_main() -> None:
    values = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    declared = parse(MAIN)["parameters"]
    assert set(values) <= set(declared), set(values) - set(declared)
    required = {name for name, spec in declared.items() if spec["default"] is None}
    assert required <= set(values), required - set(values)
    assert values["brokerApiClientId"]["value"] == "${BROKER_API_CLIENT_ID}"
    assert values["auditPolicyLocked"]["value"].startswith("${AUDIT_IMMUTABILITY_LOCKED")


# --- storage ---


def test_storage_account_is_entra_only_https_only_tls12_and_private_by_default() -> None:
    account = resource("Microsoft.Storage/storageAccounts")
    props = account.body["properties"]
    assert props["allowSharedKeyAccess"] is False
    assert props["defaultToOAuthAuthentication"] is True
    assert props["supportsHttpsTrafficOnly"] is True
    assert props["minimumTlsVersion"] == "TLS1_2"
    assert props["allowBlobPublicAccess"] is False
    assert props["allowCrossTenantReplication"] is False
    assert props["isLocalUserEnabled"] is False
    assert props["encryption"]["requireInfrastructureEncryption"] is True


def test_no_template_reads_keys_or_connection_strings() -> None:
    for path in bicep_files():
        text = path.read_text()
        for forbidden in ("listKeys(", "listConnectionStrings(", "listAccountSas(", "listServiceSas(",
                          "AccountKey=", "SharedAccessSignature=", "primaryKey", "primaryConnectionString"):
            assert forbidden not in text, f"{forbidden} in {path.name}"


def test_audit_container_is_worm_with_the_stated_retention() -> None:
    blob_service = resource("Microsoft.Storage/storageAccounts/blobServices")
    assert blob_service.get("properties.isVersioningEnabled") is True  # version-level WORM needs it
    container = resource("Microsoft.Storage/storageAccounts/blobServices/containers", "auditContainer")
    assert container.get("properties.immutableStorageWithVersioning.enabled") is True
    assert container.get("properties.publicAccess") == "None"
    policy = resource("Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies")
    assert policy.body["parent"] == "auditContainer"
    assert policy.get("properties.immutabilityPeriodSinceCreationInDays") == "auditRetentionDays"
    assert policy.get("properties.allowProtectedAppendWrites") is False
    assert policy.get("properties.allowProtectedAppendWritesAll") is False
    # Once locked by the hook, the policy leaves the template (a locked policy rejects a PUT).
    assert render(policy.condition) == "not(auditPolicyLocked)"
    retention = parse(MAIN)["parameters"]["auditRetentionDays"]
    assert retention["default"] == 365


def test_journal_names_agree_between_storage_and_app_settings() -> None:
    storage_call = render(modules()["storage"]["params"])
    settings = render(modules()["api"]["params"]["brokerSettings"])
    assert storage_call["auditContainerName"] == settings["BROKER_JOURNAL_CONTAINER"] == "names.auditContainer"
    assert storage_call["journalTableName"] == settings["BROKER_JOURNAL_TABLE"] == "names.journalTable"
    names = parse(MAIN)["variables"]["names"]["value"]
    assert names["auditContainer"] == "journal" and names["journalTable"] == "journal"
    table = resource("Microsoft.Storage/storageAccounts/tableServices/tables")
    assert table.body["name"] == "journalTableName"


def test_private_mode_turns_public_access_off() -> None:
    for symbol in ("storage", "keyVault"):
        assert render(modules()[symbol]["params"]["publicNetworkAccess"]) == "vnetEnabled ? Disabled : Enabled"
    for symbol in ("network", "privateEndpoints"):
        assert modules()[symbol]["condition"] == "vnetEnabled"
    groups = parse(INFRA / "app/private-endpoints.bicep")["variables"]["endpoints"]["value"]
    assert {g["groupId"] for g in groups} == {"blob", "queue", "table", "vault"}


# --- Key Vault, monitoring, email ---


def test_key_vault_is_rbac_only_with_purge_protection_and_soft_delete() -> None:
    props = resource("Microsoft.KeyVault/vaults").body["properties"]
    assert props["enableRbacAuthorization"] is True
    assert props["enablePurgeProtection"] is True
    assert props["enableSoftDelete"] is True
    assert "accessPolicies" not in props
    assert props["enabledForTemplateDeployment"] is False


def test_telemetry_accepts_entra_tokens_only() -> None:
    assert resource("Microsoft.Insights/components").get("properties.DisableLocalAuth") is True
    workspace = resource("Microsoft.OperationalInsights/workspaces")
    assert workspace.get("properties.features.disableLocalAuth") is True


def test_email_uses_an_azure_managed_domain_and_no_access_keys() -> None:
    domain = resource("Microsoft.Communication/emailServices/domains")
    assert domain.get("properties.domainManagement") == "AzureManaged"
    acs = resource("Microsoft.Communication/communicationServices")
    assert acs.get("properties.disableLocalAuth") is True
    assert render(acs.get("properties.linkedDomains")) == ["managedDomain.id"]


# --- role assignments ---

EXPECTED_ROLES = {
    "ba92f5b4-2d11-453d-a403-e96b0029c9fe": "Storage Blob Data Contributor",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
}
BROADER_ROLES = {
    "8e3af657-a8ff-404c-9e6c-f8dbd5aae2ff": "Owner",
    "b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor",
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9": "User Access Administrator",
    "f58310d9-a9f6-439a-9e8d-f62e7b41a168": "Role Based Access Control Administrator",
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "17d1049b-9a84-46fb-8f53-869881c3d3ab": "Storage Account Contributor",
    "00482a5a-887f-4fb3-b363-3b7fe8e74483": "Key Vault Administrator",
    "b86a8fe4-44ce-4948-aee5-eccb2c155cd7": "Key Vault Secrets Officer",
    "09976791-48a7-449e-bb21-39d1a415f350": "Communication and Email Service Owner",
}
EMAIL_SEND_ACTIONS = {
    "Microsoft.Communication/CommunicationServices/Read",
    "Microsoft.Communication/CommunicationServices/Write",
    "Microsoft.Communication/EmailServices/write",
}


def _role_id(assignment_role: str, role_ids: dict[str, str]) -> str:
    """``subscription_resource_id('...roleDefinitions', roleIds.x)`` -> the GUID; custom role -> its symbol."""
    match = re.fullmatch(r"subscription_resource_id\(Microsoft\.Authorization/roleDefinitions, roleIds\.(\w+)\)",
                         assignment_role)
    if match:
        return role_ids[match.group(1)]
    return assignment_role


def test_identity_gets_exactly_the_needed_roles_each_on_one_resource() -> None:
    rbac = INFRA / "app/rbac.bicep"
    role_ids = parse(rbac)["variables"]["roleIds"]["value"]
    assignments = resources("Microsoft.Authorization/roleAssignments")
    assert {a.file for a in assignments} == {rbac}, "role assignments live in app/rbac.bicep only"
    granted = [_role_id(render(a.get("properties.roleDefinitionId")), role_ids) for a in assignments]
    assert sorted(granted) == sorted([*EXPECTED_ROLES, "emailSenderRole.id"])
    scoped_resources = {r.symbol for r in resources(include_existing=True) if r.file == rbac and r.existing}
    for assignment in assignments:
        assert assignment.get("properties.principalId") == "principalId"
        assert assignment.get("properties.principalType") == "ServicePrincipal"
        assert assignment.body["scope"] in scoped_resources, f"{assignment.symbol} is not scoped to one resource"
        assert assignment.loop is None and assignment.condition is None
    assert render(modules()["rbac"]["params"]["principalId"]) == "identity.outputs.principalId"


def test_no_broader_role_appears_anywhere() -> None:
    for path in bicep_files():
        text = path.read_text().lower()
        for role_id, role in BROADER_ROLES.items():
            assert role_id not in text, f"{role} ({role_id}) in {path.name}"


def test_email_role_is_custom_and_limited_to_sending() -> None:
    definitions = resources("Microsoft.Authorization/roleDefinitions")
    assert [d.symbol for d in definitions] == ["emailSenderRole"]
    props = definitions[0].body["properties"]
    assert props["type"] == "CustomRole"
    assert render(props["assignableScopes"]) == ["resource_group().id"]
    (permission,) = props["permissions"]
    assert set(permission["actions"]) == EMAIL_SEND_ACTIONS
    assert not any("*" in action for action in permission["actions"])
    assert permission["dataActions"] == [] and permission["notActions"] == []


# --- the Function app ---


def test_function_app_is_flex_python311_https_only_with_the_user_assigned_identity() -> None:
    plan = resource("Microsoft.Web/serverfarms")
    assert plan.get("sku") == {"tier": "FlexConsumption", "name": "FC1"}
    site = resource("Microsoft.Web/sites")
    assert site.body["kind"] == "functionapp,linux"
    assert site.get("identity.type") == "UserAssigned"
    props = site.body["properties"]
    assert props["httpsOnly"] is True
    assert props["siteConfig"]["minTlsVersion"] == "1.2"
    assert props["siteConfig"]["scmMinTlsVersion"] == "1.2"
    assert props["siteConfig"]["ftpsState"] == "Disabled"
    assert props["functionAppConfig"]["runtime"] == {"name": "python", "version": "3.11"}
    deployment = props["functionAppConfig"]["deployment"]["storage"]
    assert deployment["authentication"]["type"] == "UserAssignedIdentity"
    assert render(site.get("tags")) == "union(tags, {'azd-service-name': 'api'})"


def test_basic_publishing_credentials_are_off() -> None:
    policies = resources("Microsoft.Web/sites/basicPublishingCredentialsPolicies")
    assert {p.body["name"]: p.get("properties.allow") for p in policies} == {"ftp": False, "scm": False}


# --- checkov suppressions ---


def test_every_checkov_skip_names_one_check_and_says_why() -> None:
    skips = [(path.name, line) for path in bicep_files() for line in path.read_text().splitlines()
             if "checkov:skip" in line]
    assert skips, "expected the justified skips documented in docs/deploy.md"
    for name, line in skips:
        match = re.search(r"checkov:skip=(CKV2?_AZURE_\d+):\s*(.+)", line)
        assert match and len(match.group(2)) > 40, f"{name}: skip without an id or a reason: {line.strip()}"


def test_azure_yaml_points_at_this_project_and_its_hooks() -> None:
    import yaml

    spec = yaml.safe_load((ROOT / "azure.yaml").read_text())
    assert spec["services"]["api"] == {"project": ".", "language": "python", "host": "function"}
    for hook in spec["hooks"].values():
        for platform in ("posix", "windows"):
            script = re.search(r"infra/hooks/\w+\.py", hook[platform]["run"])
            assert script and (ROOT / script.group(0)).is_file(), hook
