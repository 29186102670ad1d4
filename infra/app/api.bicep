// The broker's Function app on the Flex Consumption plan (Linux, Python 3.11), running as the
// user-assigned identity. Every connection is identity-based: no storage key, no connection
// string with a secret, no Key Vault reference to a key. HTTPS only, TLS 1.2, FTP and basic
// publishing credentials off (azd deploys with Entra through the Flex deployment container).
param name string
param planName string
param location string
param tags object = {}
param identityId string
param identityClientId string
param storageAccountName string
param deploymentContainerName string
param applicationInsightsName string
param virtualNetworkSubnetId string = ''
param maximumInstanceCount int = 40
param instanceMemoryMB int = 2048
@description('The BROKER_* settings that broker/settings.py reads (built in main.bicep).')
param brokerSettings object
@description('Public base URL; empty means https://<default host name>.')
param publicBaseUrl string = ''

resource storageAccount 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: Flex Consumption zone redundancy is region-dependent and needs always-ready instances (a fixed monthly cost); left to the operator, see docs/deploy.md.
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: The broker is the agents' HTTPS endpoint and agents (Devin) call from the internet; every call carries an Entra token that the broker validates, and outbound access can go through the VNet (vnetEnabled).
  // checkov:skip=CKV_AZURE_17: Callers authenticate with Entra bearer tokens validated by the broker (broker/identity.py); agents such as Devin cannot present client certificates.
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales to zero; a minimum instance count (always-ready) is a standing cost the operator can add. Durable state lives in storage, so no instance is needed for failover.
  // checkov:skip=CKV_AZURE_213: Flex Consumption does not use the App Service health-check pinger; GET /api/health exists for external probes (availability tests).
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    publicNetworkAccess: 'Enabled'
    keyVaultReferenceIdentity: identityId
    virtualNetworkSubnetId: empty(virtualNetworkSubnetId) ? null : virtualNetworkSubnetId
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      vnetRouteAllEnabled: !empty(virtualNetworkSubnetId)
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageAccount.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
        // Durable on Flex Consumption: one instance of the `durable` group (orchestrators,
        // activities, entities) is always ready, so approval decisions and grant expiries are
        // picked up without waiting for a cold scale-out from zero.
        alwaysReady: [
          {
            name: 'durable'
            instanceCount: 1
          }
        ]
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

var baseUrl = empty(publicBaseUrl) ? 'https://${site.properties.defaultHostName}' : publicBaseUrl

// The Functions host and the Durable extension reach storage as the identity (AzureWebJobsStorage
// with __credential/__clientId and one URI per service). The broker's own clients use
// DefaultAzureCredential, which picks the user-assigned identity through AZURE_CLIENT_ID.
var platformSettings = {
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  AzureWebJobsStorage__blobServiceUri: storageAccount.properties.primaryEndpoints.blob
  AzureWebJobsStorage__queueServiceUri: storageAccount.properties.primaryEndpoints.queue
  AzureWebJobsStorage__tableServiceUri: storageAccount.properties.primaryEndpoints.table
  AZURE_CLIENT_ID: identityClientId
  // Names the App Insights resource; ingestion needs an Entra token (local auth is off there).
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsights.properties.ConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  // The Python worker hands each invocation's trace context to OpenTelemetry, so the broker's
  // spans (broker/telemetry.py) join the host's request trace.
  PYTHON_ENABLE_OPENTELEMETRY: 'true'
}

resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  // checkov:skip=CKV_AZURE_13: This is the appsettings config resource (environment variables), not the site's web config that the check reads; callers are authenticated by the broker itself (Entra tokens, broker/identity.py), not by App Service Authentication.
  // checkov:skip=CKV_AZURE_63: This is the appsettings config resource (environment variables), not the site's web config that the check reads; Flex Consumption has no App Service HTTP log files, requests go to Application Insights.
  // checkov:skip=CKV_AZURE_65: This is the appsettings config resource (environment variables), not the site's web config that the check reads; detailed error pages are an IIS/App Service feature that Flex Consumption does not have.
  // checkov:skip=CKV_AZURE_66: This is the appsettings config resource (environment variables), not the site's web config that the check reads; failed request tracing is an IIS feature that Flex Consumption does not have.
  // checkov:skip=CKV_AZURE_80: This is the appsettings config resource (environment variables), not the site's web config that the check reads; the app is Python 3.11, no .NET Framework.
  // checkov:skip=CKV_AZURE_88: This is the appsettings config resource (environment variables), not the site's web config that the check reads; Flex Consumption runs from a blob deployment container, Azure Files is not used (and would need a shared key).
  // checkov:skip=CKV_AZURE_222: This is the appsettings config resource (environment variables), not the site's web config that the check reads; public network access is set on the site, see the reason there.
  parent: site
  name: 'appsettings'
  properties: union(brokerSettings, { BROKER_PUBLIC_BASE_URL: baseUrl }, platformSettings)
}

resource ftpCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

output name string = site.name
output publicBaseUrl string = baseUrl
