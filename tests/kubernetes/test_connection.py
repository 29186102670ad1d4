"""How the engine reaches a cluster: token and kubeconfig credentials, TLS pinning, refusals."""

from __future__ import annotations

import base64
import json

import pytest
import yaml

from broker.problems import BrokerError
from broker.secrets import SecretValue
from broker.targets.base import Command, ExecutionLimits

GET_PODS = Command("kubectl", argv=("get", "pods", "-n", "demo"))


def _run(engine, target, secret: SecretValue):
    return engine.execute(target, GET_PODS, secret, ExecutionLimits(), read_only=True)


def _kubeconfig(server: str, ca_pem: bytes, user: dict) -> str:
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "aks",
        "clusters": [{"name": "aks", "cluster": {"server": server,
                                                 "certificate-authority-data": base64.b64encode(ca_pem).decode()}}],
        "users": [{"name": "agent", "user": user}],
        "contexts": [{"name": "aks", "context": {"cluster": "aks", "user": "agent"}}]})


def test_token_forms(engine, cluster, target_for, token_secret) -> None:
    target = target_for(cluster)
    assert len(_run(engine, target, token_secret).rows) == 3
    as_json = SecretValue(json.dumps({"token": token_secret.value}), "v2")
    assert len(_run(engine, target, as_json).rows) == 3


def test_kubeconfig_from_key_vault(engine, cluster, k8s_certs, target_for, token_secret) -> None:
    from broker.catalog import Target

    target = Target(name="k8s-kc", engine="kubernetes", read_only=True,
                    credential={"source": "key-vault", "secret": "k8s-kubeconfig"})
    kubeconfig = _kubeconfig(cluster.base_url, k8s_certs.ca_path.read_bytes(), {"token": token_secret.value})
    assert len(_run(engine, target, SecretValue(kubeconfig, "v1")).rows) == 3


@pytest.mark.parametrize("user", [
    {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": "kubelogin", "args": ["get-token"]}},
    {"auth-provider": {"name": "azure", "config": {"cmd-path": "/bin/sh"}}},
])
def test_kubeconfig_plugins_are_refused(engine, cluster, k8s_certs, user: dict) -> None:
    from broker.catalog import Target

    target = Target(name="k8s-kc", engine="kubernetes", credential={"source": "key-vault", "secret": "kc"})
    with pytest.raises(BrokerError) as refused:
        _run(engine, target, SecretValue(_kubeconfig(cluster.base_url, k8s_certs.ca_path.read_bytes(), user), "v1"))
    assert refused.value.code == "secret_malformed" and "runs no programs" in refused.value.detail


def test_kubeconfig_without_tls_verification_is_refused(engine, cluster) -> None:
    from broker.catalog import Target

    config = yaml.safe_dump({"clusters": [{"name": "c", "cluster": {"server": cluster.base_url,
                                                                   "insecure-skip-tls-verify": True}}],
                             "users": [{"name": "u", "user": {"token": "x"}}],
                             "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                             "current-context": "c"})
    target = Target(name="k8s-kc", engine="kubernetes", credential={"source": "key-vault", "secret": "kc"})
    with pytest.raises(BrokerError) as refused:
        _run(engine, target, SecretValue(config, "v1"))
    assert refused.value.code == "secret_malformed"


def test_plain_http_and_missing_server_are_refused(engine, cluster, target_for, token_secret) -> None:
    with pytest.raises(BrokerError) as http:
        _run(engine, target_for(cluster, server=cluster.base_url.replace("https://", "http://")), token_secret)
    assert http.value.code == "target_misconfigured"
    with pytest.raises(BrokerError) as no_server:
        _run(engine, target_for(cluster, server=""), token_secret)
    assert no_server.value.code == "target_misconfigured"


def test_the_cluster_ca_is_pinned(engine, cluster, target_for, token_secret) -> None:
    import trustme

    other_ca = base64.b64encode(trustme.CA().cert_pem.bytes()).decode()
    with pytest.raises(BrokerError) as untrusted:
        _run(engine, target_for(cluster, certificate_authority_data=other_ca), token_secret)
    assert untrusted.value.code == "target_unavailable"


def test_a_refused_credential_and_a_rotated_one(engine, cluster, target_for, token_secret) -> None:
    target = target_for(cluster)
    with pytest.raises(BrokerError) as refused:
        _run(engine, target, SecretValue("not-the-token", "v0"))
    assert refused.value.code == "target_auth_failed"
    assert len(_run(engine, target, token_secret).rows) == 3
    cluster.tokens.tokens = {"rotated-token"}
    assert len(_run(engine, target, SecretValue("rotated-token", "v2")).rows) == 3
    engine.check(target, SecretValue("rotated-token", "v2"))
    with pytest.raises(BrokerError) as stale:
        engine.check(target, token_secret)
    assert stale.value.code == "target_auth_failed"
