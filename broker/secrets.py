"""Target credentials: Key Vault secrets and managed-identity tokens, held only by the broker.

Values are cached for a short TTL (rotation takes effect within it), never logged, never put in
an exception message, and never returned to a caller. Any failure to obtain one is a 503: the
command does not run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.keyvault.secrets import SecretClient

from broker.catalog import Credential, KeyVaultCredential, ManagedIdentityCredential
from broker.problems import Unavailable


@dataclass(frozen=True)
class SecretValue:
    """A credential value; ``repr`` never shows it."""

    value: str
    version: str = ""

    def __repr__(self) -> str:
        return f"SecretValue(version={self.version!r}, value=<hidden>)"

    __str__ = __repr__


class SecretStore(Protocol):
    def get(self, name: str) -> SecretValue: ...

    def invalidate(self, name: str) -> None:
        """Forget a cached value (the target refused it: it was rotated)."""


class KeyVaultSecretStore:
    """Key Vault through the real ``SecretClient``, with a per-secret TTL cache."""

    def __init__(self, vault_url: str, credential: TokenCredential, *, ttl_seconds: float = 300.0,
                 clock: Callable[[], float] = time.monotonic, **client_kwargs: object) -> None:
        if not vault_url:
            raise ValueError("BROKER_KEY_VAULT_URL is not set")
        self._client = SecretClient(vault_url, credential, retry_total=1, connection_timeout=3,
                                    read_timeout=5, **client_kwargs)
        self._ttl = ttl_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, SecretValue]] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> SecretValue:
        now = self._clock()
        cached = self._cache.get(name)
        if cached and now - cached[0] < self._ttl:
            return cached[1]
        with self._lock:
            cached = self._cache.get(name)
            if cached and self._clock() - cached[0] < self._ttl:
                return cached[1]
            try:
                secret = self._client.get_secret(name)
            except ResourceNotFoundError as exc:
                raise Unavailable(f"The credential for this target is missing from Key Vault ({name}).",
                                  code="secret_missing") from exc
            except (AzureError, OSError, ValueError) as exc:
                raise Unavailable("Key Vault is unreachable; the command did not run.",
                                  code="secrets_unavailable") from exc
            if secret.value is None:
                raise Unavailable(f"The Key Vault secret {name} has no value.", code="secret_missing")
            value = SecretValue(secret.value, secret.properties.version or "")
            self._cache[name] = (self._clock(), value)
            return value

    def invalidate(self, name: str) -> None:
        """Forget a cached value, e.g. after the target rejected it (it may have been rotated)."""
        with self._lock:
            self._cache.pop(name, None)

    def close(self) -> None:
        self._client.close()


class CredentialResolver:
    """Turns a catalog ``Credential`` into the value an engine connects with."""

    def __init__(self, secrets: SecretStore, identity: TokenCredential) -> None:
        self._secrets = secrets
        self._identity = identity

    def resolve(self, credential: Credential) -> SecretValue:
        if isinstance(credential, KeyVaultCredential):
            return self._secrets.get(credential.secret)
        if isinstance(credential, ManagedIdentityCredential):
            try:
                token = self._identity.get_token(credential.scope)
            except (AzureError, OSError, ValueError) as exc:
                raise Unavailable("The broker's managed identity could not get a token for this target.",
                                  code="identity_unavailable") from exc
            return SecretValue(token.token, f"exp-{token.expires_on}")
        raise Unavailable("Unsupported credential source.", code="secrets_unavailable")

    def invalidate(self, credential: Credential) -> None:
        if isinstance(credential, KeyVaultCredential):
            self._secrets.invalidate(credential.secret)
