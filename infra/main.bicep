// The agent access broker in Azure: everything `azd up` creates, in one resource group.
//
// The Function app (Flex Consumption, Python 3.11) runs as one user-assigned managed identity.
// That identity is the only principal this template grants anything to, and only data-plane roles
// on the resources the broker uses (see app/rbac.bicep). No keys or connection strings exist:
// storage, Key Vault, Application Insights and email are all reached with Entra ID tokens.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; seeds the resource names and the azd-env-name tag.')
param environmentName string

@minLength(1)
@description('Region for every regional resource. Pick one where the Flex Consumption plan is offered.')
@metadata({ azd: { type: 'location' } })
param location string

@minLength(36)
@maxLength(36)
@description('Client (application) id of the broker API app registration. The preprovision hook creates it and stores it as BROKER_API_CLIENT_ID; see docs/deploy.md to bring your own.')
param brokerApiClientId string

@description('Entra tenants whose tokens the broker accepts, comma-separated. Empty means this subscription\'s tenant only.')
param allowedTenants string = ''

@description('Extra accepted token audiences, comma-separated, on top of api://<client id> and <client id>.')
param extraAudiences string = ''

@description('Public base URL of the broker (links in 202 responses and approval mail). Empty means the Function app\'s default host name.')
param publicBaseUrl string = ''

@description('Target catalog file inside the deployed package.')
param catalogPath string = 'config/azure/catalog.yaml'

@description('Policy file inside the deployed package.')
param policyPath string = 'config/azure/policy.yaml'

@description('Approvers file inside the deployed package (who may approve, by Entra tenant and object id).')
param approversPath string = 'config/azure/approvers.yaml'

@description('NCRONTAB schedule (six fields, UTC) of the data classification timer that samples every SQL target for sensitive columns.')
param classificationSchedule string = '0 30 2 * * *'

@description('Durable Functions task hub name (host.json reads it as %BROKER_TASK_HUB%).')
@minLength(3)
@maxLength(45)
param taskHubName string = 'brokerhub'

@description('Days every journal blob version stays immutable (WORM). The policy is created unlocked; the postprovision hook locks it only when AUDIT_LOCK_IMMUTABILITY=yes-lock-forever.')
@minValue(1)
@maxValue(146000)
param auditRetentionDays int = 365

@description('True once the postprovision hook has locked the audit policy: a locked policy can no longer be written by a deployment, so it is left out of the template.')
param auditPolicyLocked bool = false

@description('Storage redundancy. ZRS or GZRS keep the journal through a zone or region loss, where offered.')
@allowed(['Standard_LRS', 'Standard_ZRS', 'Standard_GRS', 'Standard_GZRS', 'Standard_RAGRS', 'Standard_RAGZRS'])
param storageSkuName string = 'Standard_LRS'

@description('Put storage and Key Vault behind private endpoints and integrate the Function app with a VNet.')
param vnetEnabled bool = false

@description('Where Azure Communication Services keeps email data at rest.')
@allowed(['United States', 'Europe', 'UK', 'Australia', 'Japan', 'France', 'Switzerland', 'Germany', 'Norway', 'Canada', 'India', 'Asia Pacific', 'Africa', 'Korea', 'UAE', 'Brazil'])
param emailDataLocation string = 'United States'

@description('Upper bound of Flex Consumption instances (the bill\'s ceiling under load).')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Memory per instance in MB.')
@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

@description('Log Analytics retention in days (the journal itself lives in storage, not here).')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 30

var abbrs = loadJsonContent('./abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }
var functionAppName = '${abbrs.webSitesFunctions}broker-${resourceToken}'

// Names the code and the infra must agree on live here, once.
var names = {
  journalTable: 'journal'
  auditContainer: 'journal'
  deploymentContainer: 'app-package-${take(functionAppName, 32)}-${take(resourceToken, 7)}'
  maskingKeySecret: 'masking-key'
  approvalsTable: 'approvals'
  grantsTable: 'grants'
  classificationTable: 'classification'
  approvalResultsContainer: 'approval-results'
  approvalSigningSecret: 'approval-signing-key'
  approvalHmacSecret: 'approval-hmac-key'
}
// Key Vault secrets that the postprovision hook creates with random values when missing (never
// overwritten).
var generatedSecretNames = [names.maskingKeySecret, names.approvalSigningSecret, names.approvalHmacSecret]

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: '${abbrs.resourcesResourceGroups}${environmentName}'
  location: location
  tags: tags
}

module identity 'app/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: '${abbrs.managedIdentityUserAssignedIdentities}broker-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: '${abbrs.operationalInsightsWorkspaces}${resourceToken}'
    applicationInsightsName: '${abbrs.insightsComponents}${resourceToken}'
    location: location
    tags: tags
    retentionInDays: logRetentionDays
  }
}

module storage 'app/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: '${abbrs.storageStorageAccounts}${resourceToken}'
    location: location
    tags: tags
    skuName: storageSkuName
    deploymentContainerName: names.deploymentContainer
    auditContainerName: names.auditContainer
    journalTableName: names.journalTable
    auditRetentionDays: auditRetentionDays
    auditPolicyLocked: auditPolicyLocked
    publicNetworkAccess: vnetEnabled ? 'Disabled' : 'Enabled'
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsWorkspaceId
  }
}

module keyVault 'app/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: '${abbrs.keyVaultVaults}${resourceToken}'
    location: location
    tags: tags
    publicNetworkAccess: vnetEnabled ? 'Disabled' : 'Enabled'
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsWorkspaceId
  }
}

module email 'app/email.bicep' = {
  name: 'email'
  scope: rg
  params: {
    emailServiceName: '${abbrs.communicationEmailServices}${resourceToken}'
    communicationServiceName: '${abbrs.communicationCommunicationServices}${resourceToken}'
    dataLocation: emailDataLocation
    tags: tags
  }
}

module network 'app/network.bicep' = if (vnetEnabled) {
  name: 'network'
  scope: rg
  params: {
    vnetName: '${abbrs.networkVirtualNetworks}${resourceToken}'
    nsgName: '${abbrs.networkNetworkSecurityGroups}${resourceToken}'
    location: location
    tags: tags
  }
}

module privateEndpoints 'app/private-endpoints.bicep' = if (vnetEnabled) {
  name: 'private-endpoints'
  scope: rg
  params: {
    namePrefix: '${abbrs.networkPrivateEndpoints}${resourceToken}'
    location: location
    tags: tags
    vnetId: vnetEnabled ? network.outputs.vnetId : ''
    subnetId: vnetEnabled ? network.outputs.privateEndpointSubnetId : ''
    storageAccountId: storage.outputs.id
    keyVaultId: keyVault.outputs.id
  }
}

module rbac 'app/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    principalId: identity.outputs.principalId
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    communicationServiceName: email.outputs.communicationServiceName
  }
}

module api 'app/api.bicep' = {
  name: 'api'
  scope: rg
  // The host reads storage, Key Vault and App Insights as soon as it starts: grant first.
  dependsOn: [rbac]
  params: {
    name: functionAppName
    planName: '${abbrs.webServerFarms}${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerName: names.deploymentContainer
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    virtualNetworkSubnetId: vnetEnabled ? network.outputs.appSubnetId : ''
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    brokerSettings: {
      BROKER_ALLOWED_TENANTS: empty(allowedTenants) ? tenant().tenantId : allowedTenants
      BROKER_AUDIENCES: join(concat(['api://${brokerApiClientId}', brokerApiClientId], empty(extraAudiences) ? [] : split(extraAudiences, ',')), ',')
      BROKER_CATALOG_PATH: catalogPath
      BROKER_POLICY_PATH: policyPath
      BROKER_KEY_VAULT_URL: keyVault.outputs.uri
      BROKER_TABLE_ENDPOINT: storage.outputs.tableEndpoint
      BROKER_BLOB_ENDPOINT: storage.outputs.blobEndpoint
      BROKER_JOURNAL_TABLE: names.journalTable
      BROKER_JOURNAL_CONTAINER: names.auditContainer
      BROKER_MASKING_KEY_SECRET: names.maskingKeySecret
      BROKER_TASK_HUB: taskHubName
      BROKER_APPROVERS_PATH: approversPath
      BROKER_APPROVALS_TABLE: names.approvalsTable
      BROKER_GRANTS_TABLE: names.grantsTable
      BROKER_CLASSIFICATION_TABLE: names.classificationTable
      BROKER_CLASSIFICATION_SCHEDULE: classificationSchedule
      BROKER_RESULTS_CONTAINER: names.approvalResultsContainer
      BROKER_APPROVAL_SIGNING_SECRET: names.approvalSigningSecret
      BROKER_APPROVAL_HMAC_SECRET: names.approvalHmacSecret
      // Approval mail through Communication Services, with the managed identity (custom sender role).
      BROKER_MAIL_TRANSPORT: 'acs'
      BROKER_MAIL_SENDER: email.outputs.senderAddress
      BROKER_ACS_ENDPOINT: email.outputs.endpoint
    }
    publicBaseUrl: publicBaseUrl
  }
}

// Read by azd and by the hooks in infra/hooks (azd exposes outputs to hooks as environment variables).
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_NAME string = api.outputs.name
output SERVICE_API_NAME string = api.outputs.name
output BROKER_URL string = api.outputs.publicBaseUrl
output BROKER_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_KEY_VAULT_URL string = keyVault.outputs.uri
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AUDIT_CONTAINER_NAME string = names.auditContainer
output AUDIT_RETENTION_DAYS int = auditRetentionDays
output GENERATED_SECRET_NAMES string = join(generatedSecretNames, ',')
output MAIL_SENDER_ADDRESS string = email.outputs.senderAddress
output MAIL_ENDPOINT string = email.outputs.endpoint
output APPLICATIONINSIGHTS_CONNECTION_STRING string = monitoring.outputs.connectionString
