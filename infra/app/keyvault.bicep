// Key Vault for target credentials and the broker's own keys (masking key, signing keys).
// RBAC mode only (no access policies); soft delete with purge protection, so a deleted secret or
// vault can be recovered for the retention period and nobody can destroy it sooner.
param name string
param location string
param tags object = {}
@allowed(['Enabled', 'Disabled'])
param publicNetworkAccess string = 'Enabled'
@minValue(7)
@maxValue(90)
param softDeleteRetentionInDays int = 90
param logAnalyticsWorkspaceId string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: Without VNet integration (vnetEnabled=false) the Flex app's outbound addresses are shared and unlisted, so a firewall would lock the broker out; vnetEnabled=true sets defaultAction Deny behind a private endpoint.
  // checkov:skip=CKV_AZURE_189: Public network access is disabled when vnetEnabled=true (private endpoint); the default deployment has no VNet for the app to come from. RBAC-only data access still requires an Entra token with a role on this vault.
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: softDeleteRetentionInDays
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: publicNetworkAccess
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: (publicNetworkAccess == 'Enabled') ? 'Allow' : 'Deny'
    }
  }
}

// Every secret read (by the broker) and write (by operators) is recorded in Log Analytics.
resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'audit'
  scope: vault
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      { categoryGroup: 'audit', enabled: true }
    ]
  }
}

output id string = vault.id
output name string = vault.name
output uri string = vault.properties.vaultUri
