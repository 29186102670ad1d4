// The broker's one identity: the Function app runs as it, and every role in rbac.bicep is granted
// to it. User-assigned (not system-assigned) so the grants exist before the app first starts.
param name string
param location string
param tags object = {}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output principalId string = identity.properties.principalId
output clientId string = identity.properties.clientId
