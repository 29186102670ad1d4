"""Fixtures for the Kubernetes engine: a fresh stand-in cluster per test (kmock over HTTPS, the demo
objects), the engine with a Key Vault-style token credential, and the execute path's masking."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.catalog import Target
from broker.execute import mask_result
from broker.masking import Masker
from broker.secrets import SecretValue
from broker.targets.base import Command, ExecutionLimits, ResultSet
from broker.targets.kubernetes import KubernetesEngine
from devhost.certs import DevCertificates
from devhost.kubernetes import KubernetesStandIn, TokenCheck
from devhost.kubernetes.demo import seed_demo_cluster

TOKEN = "sa-token-for-tests"
MASKING_KEY = b"kubernetes-tests-masking-key-0123456789"


@pytest.fixture(scope="session")
def k8s_certs(tmp_path_factory: pytest.TempPathFactory) -> DevCertificates:
    return DevCertificates(tmp_path_factory.mktemp("k8s-tls"))


def start_cluster(certs: DevCertificates, *, metrics: bool = True) -> KubernetesStandIn:
    standin = KubernetesStandIn(certs.server_context(), TokenCheck(tokens={TOKEN}), metrics=metrics).start()
    standin.call(seed_demo_cluster, standin.emulator)
    return standin


@pytest.fixture
def new_cluster(k8s_certs: DevCertificates) -> Iterator[Callable[..., KubernetesStandIn]]:
    """Start more stand-in clusters (e.g. one without a metrics API); all stop at teardown."""
    started: list[KubernetesStandIn] = []

    def start(**kwargs: Any) -> KubernetesStandIn:
        started.append(start_cluster(k8s_certs, **kwargs))
        return started[-1]

    yield start
    for standin in started:
        standin.stop()


@pytest.fixture
def cluster(new_cluster: Callable[..., KubernetesStandIn]) -> KubernetesStandIn:
    return new_cluster()


def make_target(standin: KubernetesStandIn, certs: DevCertificates, *, read_only: bool = False,
                **connection: Any) -> Target:
    conn = {"server": standin.base_url,
            "certificate_authority_data": base64.b64encode(certs.ca_path.read_bytes()).decode(), **connection}
    return Target(name="k8s-test", engine="kubernetes", read_only=read_only, connection=conn,
                  credential={"source": "key-vault", "secret": "k8s-test-token"})


@pytest.fixture
def target_for(k8s_certs: DevCertificates) -> Callable[..., Target]:
    """``target_for(cluster, read_only=..., **connection)``: a catalog target for a stand-in."""
    return lambda standin, **kwargs: make_target(standin, k8s_certs, **kwargs)


@pytest.fixture
def token_secret() -> SecretValue:
    return SecretValue(TOKEN, "v1")


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[KubernetesEngine]:
    eng = KubernetesEngine(workdir=tmp_path / "k8s")
    yield eng
    eng.close()


Run = Callable[..., ResultSet]


@pytest.fixture
def run(engine: KubernetesEngine, cluster: KubernetesStandIn, k8s_certs: DevCertificates) -> Run:
    """Run argv on the fresh cluster through the engine and the execute path's masking."""
    target = make_target(cluster, k8s_certs)

    def run(*argv: str, manifest: Any = None, limits: ExecutionLimits | None = None, read_only: bool = False,
            secret: SecretValue | None = None) -> ResultSet:
        command = Command("kubectl", argv=tuple(argv), manifest=manifest)
        engine.classify(command)
        result = engine.execute(target, command, secret or SecretValue(TOKEN, "v1"), limits or ExecutionLimits(),
                                read_only=read_only)
        result.masked = mask_result(engine, Masker(MASKING_KEY), result, target)  # type: ignore[attr-defined]
        return result

    return run


@pytest.fixture
def pods(cluster: KubernetesStandIn) -> Callable[..., list[str]]:
    """The names of the cluster's pods (``pods(namespace="demo", app="web")``), read from the stand-in."""
    def names(namespace: str = "demo", app: str = "web") -> list[str]:
        return cluster.call(lambda: sorted(p["metadata"]["name"] for p in cluster.emulator.each("", "pods", namespace)
                                           if (p["metadata"].get("labels") or {}).get("app") == app))
    return names
