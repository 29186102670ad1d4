"""How the engine reaches a cluster: the official client, configured from the catalog and a credential.

Credentials, in the order an operator would choose them:

* ``managed-identity`` (AKS with Entra ID): the broker's identity gets a token for the AKS server
  application (scope ``6dae42f8-4368-4678-94ff-3960e28e3630/.default``); the server and its CA come
  from the catalog's ``connection`` (``server``, ``certificate_authority_data``, ``tls_server_name``).
* ``key-vault`` holding a bearer token (a service-account token; bare, or JSON ``{"token": ...}``),
  with the server and CA from ``connection`` as above.
* ``key-vault`` holding a kubeconfig (YAML or JSON). It may carry a token or a client certificate;
  exec and auth-provider plugins are refused (the broker runs no programs), so is skipping TLS
  verification. ``connection.server`` overrides the kubeconfig's server when set.

Only ``https://`` servers are accepted: a bearer token never crosses plain HTTP.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s
from kubernetes.config.config_exception import ConfigException
from kubernetes.config.kube_config import KubeConfigLoader
from kubernetes.dynamic import DynamicClient

from broker.catalog import Target
from broker.problems import Unavailable
from broker.secrets import SecretValue
from broker.targets.kubernetes_connection import KubernetesConnection

AKS_SCOPE = "6dae42f8-4368-4678-94ff-3960e28e3630/.default"


@dataclass
class Cluster:
    """One target's client: the typed core API and the dynamic client (with its discovery cache)."""

    api: k8s.ApiClient
    dynamic: DynamicClient
    core: k8s.CoreV1Api
    version: str  # the credential version this client was built for
    token_based: bool
    lock: threading.Lock


class Connections:
    """Clients per target, rebuilt when the credential changes (a new token just replaces the old)."""

    def __init__(self, workdir: Path | None = None) -> None:
        self._dir = Path(workdir or tempfile.mkdtemp(prefix="broker-k8s-"))
        self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._clusters: dict[str, Cluster] = {}
        self._lock = threading.Lock()

    def get(self, target: Target, secret: SecretValue) -> Cluster:
        version = secret.version or hashlib.sha256(secret.value.encode()).hexdigest()[:16]
        with self._lock:
            cluster = self._clusters.get(target.name)
            if cluster is not None and cluster.version == version:
                return cluster
            token = _bearer_token(secret.value)
            if cluster is not None and cluster.token_based and token is not None:
                cluster.api.configuration.api_key["BearerToken"] = token
                cluster.version = version
                return cluster
            if cluster is not None:
                cluster.api.close()
            cluster = self._build(target, secret, version)
            self._clusters[target.name] = cluster
            return cluster

    def _build(self, target: Target, secret: SecretValue, version: str) -> Cluster:
        token = _bearer_token(secret.value)
        if token is not None:
            config = self._token_config(target, token)
        else:
            config = self._kubeconfig_config(target, secret.value)
        if not str(config.host).startswith("https://"):
            raise Unavailable(f"Target {target.name} must be reached over https://; the broker does not send "
                              "credentials over plain HTTP.", code="target_misconfigured")
        config.verify_ssl = True
        config.retries = 1
        api = k8s.ApiClient(config)
        api.user_agent = "agent-access-broker"
        cache = self._dir / f"discovery-{hashlib.sha256(f'{target.name}|{config.host}'.encode()).hexdigest()[:16]}.json"
        try:
            dynamic = DynamicClient(api, cache_file=str(cache))
        except Exception as exc:
            from broker.targets.kubernetes._errors import api_error

            api.close()
            raise api_error(exc, target.name) from exc
        return Cluster(api, dynamic, k8s.CoreV1Api(api), version, token is not None, threading.Lock())

    def _token_config(self, target: Target, token: str) -> k8s.Configuration:
        server = target.settings(KubernetesConnection).server
        if not server:
            raise Unavailable(f"Target {target.name} has no connection.server in the catalog.",
                              code="target_misconfigured")
        config = k8s.Configuration(host=server.rstrip("/"), api_key={"BearerToken": token},
                                   api_key_prefix={"BearerToken": "Bearer"})
        self._pin_ca(target, config)
        return config

    def _kubeconfig_config(self, target: Target, text: str) -> k8s.Configuration:
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError:
            document = None
        if not isinstance(document, dict) or "clusters" not in document:
            raise Unavailable(f"The credential for {target.name} is neither a token nor a kubeconfig.",
                              code="secret_malformed")
        for user in document.get("users") or []:
            spec = (user or {}).get("user") or {}
            if "exec" in spec or "auth-provider" in spec:
                raise Unavailable(f"The kubeconfig for {target.name} uses an exec or auth-provider plugin; the "
                                  "broker runs no programs. Store a token or a client certificate.",
                                  code="secret_malformed")
        for cluster in document.get("clusters") or []:
            if ((cluster or {}).get("cluster") or {}).get("insecure-skip-tls-verify"):
                raise Unavailable(f"The kubeconfig for {target.name} turns TLS verification off; the broker "
                                  "refuses it.", code="secret_malformed")
        config = k8s.Configuration()
        try:
            KubeConfigLoader(config_dict=document, config_base_path=str(self._dir)).load_and_set(config)
        except (ConfigException, KeyError, TypeError, ValueError) as exc:
            raise Unavailable(f"The kubeconfig for {target.name} cannot be used: {type(exc).__name__}.",
                              code="secret_malformed") from exc
        conn = target.settings(KubernetesConnection)
        if conn.server:
            config.host = conn.server.rstrip("/")
        if conn.certificate_authority_data:
            self._pin_ca(target, config)
        return config

    def _pin_ca(self, target: Target, config: k8s.Configuration) -> None:
        """The catalog's CA (base64 PEM) as a file: the websocket transport (exec) reads only files."""
        conn = target.settings(KubernetesConnection)
        if conn.tls_server_name:
            config.tls_server_name = conn.tls_server_name
        data = conn.certificate_authority_data
        if not data:
            return
        try:
            pem = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise Unavailable(f"Target {target.name}: connection.certificate_authority_data is not base64.",
                              code="target_misconfigured") from exc
        path = self._dir / f"ca-{hashlib.sha256(pem).hexdigest()[:16]}.pem"
        if not path.exists():
            path.write_bytes(pem)
            path.chmod(0o600)
        config.ssl_ca_cert = str(path)

    def close(self) -> None:
        with self._lock:
            for cluster in self._clusters.values():
                cluster.api.close()
            self._clusters.clear()
        shutil.rmtree(self._dir, ignore_errors=True)


def _bearer_token(value: str) -> str | None:
    """A bare token, or JSON ``{"token": ...}``; None for anything else (a kubeconfig)."""
    text = value.strip()
    if text.startswith("{"):
        try:
            data: Any = json.loads(text)
        except json.JSONDecodeError:
            return None
        token = data.get("token") if isinstance(data, dict) else None
        return token if isinstance(token, str) and token else None
    if text and "\n" not in text and ":" not in text and " " not in text:
        return text
    return None
