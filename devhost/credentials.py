"""A TokenCredential for a dev identity, so the dev stack can seed Key Vault as an operator
through the real SecretClient (the broker itself uses its managed identity)."""

from __future__ import annotations

from typing import Any

from azure.core.credentials import AccessToken

from devhost.identities import IDENTITIES
from devhost.oidc import DevIssuer


class DevIdentityCredential:
    def __init__(self, issuer: DevIssuer, identity: str = "operator") -> None:
        self._issuer = issuer
        self._identity = IDENTITIES[identity]

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        scope = scopes[0]
        audience = scope[: -len("/.default")] if scope.endswith("/.default") else scope
        claims = self._issuer.claims_for(self._identity, audience=audience, version="1.0")
        return AccessToken(self._issuer.sign(claims), claims["exp"])

    def close(self) -> None:
        pass

    def __enter__(self) -> DevIdentityCredential:
        return self

    def __exit__(self, *args: Any) -> None:
        pass
