// One storage account for the Functions host, the Durable task hub, the deployment package and the
// journal. Shared-key access is off: every client (host, broker, azd deploy, operators) uses Entra.
//
// The audit container `journal` has version-level immutability (WORM): every blob version the
// broker writes stays unmodifiable and undeletable for `auditRetentionDays`. The policy starts
// unlocked; the postprovision hook locks it on request (irreversible). The Durable extension
// creates its own task-hub tables, queues and lease containers at start-up.
param name string
param location string
param tags object = {}
param skuName string = 'Standard_LRS'
param deploymentContainerName string
param auditContainerName string
param journalTableName string
param auditRetentionDays int
param auditPolicyLocked bool = false
@allowed(['Enabled', 'Disabled'])
param publicNetworkAccess string = 'Enabled'
param logAnalyticsWorkspaceId string

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: Default action is Deny when vnetEnabled=true (private endpoints); without VNet integration the Flex host reaches storage from shared, unlisted addresses. Shared-key access is off, so every request still needs an Entra token with a data role.
  // checkov:skip=CKV_AZURE_59: Same as CKV_AZURE_35: public network access is Disabled when vnetEnabled=true. Anonymous blob access is off in every mode (allowBlobPublicAccess false).
  // checkov:skip=CKV_AZURE_206: Redundancy is the storageSkuName parameter (ZRS/GZRS/RA-GZRS allowed). LRS is the default because ZRS is not offered in every region that hosts Flex Consumption; docs/deploy.md recommends GZRS for production journals.
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    isLocalUserEnabled: false
    isSftpEnabled: false
    supportsHttpsTrafficOnly: true
    minimumTlsVersion: 'TLS1_2'
    publicNetworkAccess: publicNetworkAccess
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: (publicNetworkAccess == 'Enabled') ? 'Allow' : 'Deny'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: { enabled: true, keyType: 'Account' }
        file: { enabled: true, keyType: 'Account' }
        table: { enabled: true, keyType: 'Account' }
        queue: { enabled: true, keyType: 'Account' }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    // Version-level immutability needs versioning; soft delete keeps an accidental delete of
    // anything outside the audit container recoverable for a week.
    isVersioningEnabled: true
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource auditContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: auditContainerName
  properties: {
    publicAccess: 'None'
    immutableStorageWithVersioning: {
      enabled: true
    }
  }
}

// The default time-based retention of every new blob version in the audit container. Left out
// once locked: a locked policy only accepts "extend", and a redeployment must not fail on it.
resource auditRetention 'Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies@2023-05-01' = if (!auditPolicyLocked) {
  parent: auditContainer
  name: 'default'
  properties: {
    immutabilityPeriodSinceCreationInDays: auditRetentionDays
    allowProtectedAppendWrites: false
    allowProtectedAppendWritesAll: false
  }
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource journalTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: journalTableName
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: account
  name: 'default'
}

// Who wrote or deleted what in blobs and tables goes to Log Analytics: the trail around the journal.
// Reads are left out (the host polls constantly and they would dominate the bill).
resource blobDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'audit-writes'
  scope: blobService
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      { category: 'StorageWrite', enabled: true }
      { category: 'StorageDelete', enabled: true }
    ]
  }
}

resource tableDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'audit-writes'
  scope: tableService
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      { category: 'StorageWrite', enabled: true }
      { category: 'StorageDelete', enabled: true }
    ]
  }
}

output id string = account.id
output name string = account.name
output blobEndpoint string = account.properties.primaryEndpoints.blob
output queueEndpoint string = account.properties.primaryEndpoints.queue
output tableEndpoint string = account.properties.primaryEndpoints.table
output auditContainerName string = auditContainer.name
output journalTableName string = journalTable.name
output queueServiceName string = queueService.name
