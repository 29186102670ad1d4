"""The Kubernetes engine's connection settings (light: no client import)."""

from __future__ import annotations

from pydantic import Field

from broker.targets.connection import ConnectionSettings


class KubernetesConnection(ConnectionSettings):
    """The API server and the CA it must present; the credential (token, kubeconfig) is never here."""

    server: str = ""
    """``https://...``; required with a token credential, optional with a kubeconfig (which names it)."""
    certificate_authority_data: str = ""
    """Base64 PEM of the cluster CA, pinned for every call (exec included)."""
    tls_server_name: str | None = Field(default=None, min_length=1)
