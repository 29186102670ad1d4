"""The reading verbs against a fresh stand-in cluster, through the engine and the execute path's masking."""

from __future__ import annotations

import base64
import json

import pytest

from broker.problems import BrokerError
from broker.targets.base import Command, ExecutionLimits
from devhost.kubernetes.demo import DEMO_PASSWORD

B64_PASSWORD = base64.b64encode(DEMO_PASSWORD.encode()).decode()


def _everything(result: object) -> str:
    return json.dumps({k: v for k, v in vars(result).items() if k != "render"}, default=str)


def test_get_pods_default_columns_and_selector(run, pods) -> None:
    result = run("get", "pods", "-n", "demo", "-l", "app=web")
    assert [c.name for c in result.columns] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert sorted(r[0] for r in result.rows) == pods()
    assert all(r[1] == "1/1" and r[2] == "Running" for r in result.rows)
    assert result.operations == [{"group": "", "version": "v1", "resource": "pods", "verb": "list",
                                  "namespace": "demo", "name": ""}]


@pytest.mark.parametrize(("selector", "expected"), [
    ("app=web", 3), ("app in (web,api)", 3), ("app!=web", 0), ("app notin (web)", 0), ("!app", 0), ("app", 3),
    ("app=api", 0), ("app=web,pod-template-hash", 3),
])
def test_label_selectors(run, selector: str, expected: int) -> None:
    assert len(run("get", "pods", "-n", "demo", "-l", selector).rows) == expected


def test_field_selector_and_all_namespaces(run) -> None:
    result = run("get", "pods", "-A", "--field-selector", "status.phase=Running", "-o", "wide")
    assert result.columns[0].name == "NAMESPACE" and {"IP", "NODE"} <= {c.name for c in result.columns}
    assert {r[0] for r in result.rows} == {"demo", "kube-system"} and len(result.rows) == 5


def test_output_name_json_and_yaml(run) -> None:
    names = run("get", "deploy", "-n", "demo", "-o", "name")
    assert names.text == "deployment.apps/web\n"
    listing = run("get", "pods", "-n", "demo", "-o", "json")
    assert listing.document["kind"] == "List" and len(listing.document["items"]) == 3
    assert all(i["kind"] == "Pod" and i["apiVersion"] == "v1" for i in listing.document["items"])
    single = run("get", "deployment", "web", "-n", "demo", "-o", "yaml")
    assert single.document is None and single.text.startswith("apiVersion: apps/v1\nkind: Deployment\n")


def test_missing_object(run) -> None:
    with pytest.raises(BrokerError) as missing:
        run("get", "pod", "nope", "-n", "demo")
    assert missing.value.code == "kubernetes_not_found" and "nope" in missing.value.detail
    assert run("get", "pod", "nope", "-n", "demo", "--ignore-not-found").rows == []


def test_row_and_byte_limits_truncate(run) -> None:
    assert run("get", "pods", "-A", limits=ExecutionLimits(max_rows=2)).truncated
    result = run("get", "pods", "-n", "demo", "-o", "json", limits=ExecutionLimits(max_bytes=1024))
    assert result.truncated and len(result.document["items"]) < 3


def test_secret_values_never_leave_structurally(run) -> None:
    for argv in (("get", "secret", "db-credentials", "-n", "demo", "-o", "json"),
                 ("get", "secrets", "-n", "demo", "-o", "yaml"),
                 ("describe", "secret", "db-credentials", "-n", "demo"),
                 ("get", "secrets", "-n", "demo")):
        result = run(*argv)
        text = _everything(result)
        assert DEMO_PASSWORD not in text and B64_PASSWORD not in text, argv
        assert base64.b64encode(b"web").decode() not in json.dumps(result.document or {}), argv
    secret = run("get", "secret", "db-credentials", "-n", "demo", "-o", "json")
    assert set(secret.document["data"]) == {"username", "password"}
    assert all(v.startswith("[") and v.endswith("]") for v in secret.document["data"].values())
    applied = json.loads(secret.document["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"])
    assert applied["data"]["password"].startswith("[")
    assert secret.masked["secret"] >= 4


def test_describe_pod_and_deployment(run, pods) -> None:
    pod = pods()[0]
    text = run("describe", "pod", pod, "-n", "demo").text
    for expected in (f"Name:         {pod}", "Namespace:    demo", "Containers:", "Image:", "nginx:1.27",
                     "Restart Count", "Events:"):
        assert expected in text
    deployment = run("describe", "deployments", "-n", "demo", "-l", "app=web").text
    assert "3 desired | 3 updated | 3 total | 3 available" in deployment
    assert "ScalingReplicaSet" in deployment


def test_describe_configmap_values_are_scanned(run) -> None:
    text = run("describe", "configmap", "web-config", "-n", "demo").text
    assert "cm-demo-pass" not in text and "oncall@contoso.com" not in text
    assert "checkout-v2=true" in text


def test_logs_tail_previous_since_and_masking(run, pods) -> None:
    pod = pods()[0]
    tail = run("logs", pod, "-n", "demo", "--tail", "3")
    lines = tail.text.splitlines()
    assert len(lines) == 3 and lines[-1] == "ready: serving on :80"
    assert DEMO_PASSWORD not in tail.text and "sk_live_" not in tail.text
    assert tail.masked and tail.operations[-1]["subresource"] == "log"
    previous = run("logs", pod, "-n", "demo", "-p", "--tail=1")
    assert previous.text == "fatal: out of memory (limit 128Mi)\n"
    recent = run("logs", pod, "-n", "demo", "--since", "10m")
    assert 0 < len(recent.text.splitlines()) < 43
    everything = run("logs", pod, "-n", "demo", "--tail=-1")
    assert len(everything.text.splitlines()) == 43


def test_logs_by_selector_prefix_each_line(run) -> None:
    result = run("logs", "-l", "app=web", "-n", "demo", "--tail", "2")
    lines = result.text.splitlines()
    assert len(lines) == 6 and all(line.startswith("[pod/web-") and "/web] " in line for line in lines)


def test_logs_are_capped_at_the_byte_limit(run, pods) -> None:
    result = run("logs", pods()[0], "-n", "demo", limits=ExecutionLimits(max_bytes=1024))
    assert result.truncated and len(result.text) <= 1024 + 64


def test_logs_errors(run, pods) -> None:
    with pytest.raises(BrokerError) as wrong:
        run("logs", pods()[0], "-n", "demo", "-c", "sidecar")
    assert wrong.value.code == "kubernetes_invalid"
    with pytest.raises(BrokerError) as nothing:
        run("logs", "-l", "app=nothing", "-n", "demo")
    assert nothing.value.code == "kubernetes_not_found"


def test_top_pods_and_nodes(run) -> None:
    pods = run("top", "pods", "-n", "demo")
    assert [c.name for c in pods.columns] == ["NAME", "CPU(cores)", "MEMORY(bytes)"] and len(pods.rows) == 3
    assert all(r[1].endswith("m") and r[2].endswith("Mi") for r in pods.rows)
    containers = run("top", "pods", "-n", "demo", "--containers")
    assert [c.name for c in containers.columns][:2] == ["POD", "NAME"]
    nodes = run("top", "nodes")
    assert [c.name for c in nodes.columns] == ["NAME", "CPU(cores)", "CPU%", "MEMORY(bytes)", "MEMORY%"]
    assert len(nodes.rows) == 2 and nodes.operations[0]["group"] == "metrics.k8s.io"


def test_top_without_a_metrics_api_says_so(engine, new_cluster, target_for, token_secret) -> None:
    standin = new_cluster(metrics=False)
    with pytest.raises(BrokerError) as missing:
        engine.execute(target_for(standin), Command("kubectl", argv=("top", "pods", "-n", "demo")), token_secret,
                       ExecutionLimits(), read_only=True)
    assert missing.value.code == "metrics_unavailable" and "metrics-server" in missing.value.detail


def test_rollout_status(run) -> None:
    result = run("rollout", "status", "deployment/web", "-n", "demo")
    assert result.text == 'deployment "web" successfully rolled out\n' and result.status == "complete"


def test_custom_resources_through_discovery(run, cluster) -> None:
    import kmock

    def add_widgets() -> None:
        api = cluster.emulator
        api.resources["example.com/v1/widgets"] = kmock.ResourceInfo(kind="Widget", namespaced=True,
                                                                     shortnames={"wd"}, verbs={"get", "list"})
        api.store("example.com", "widgets", {"metadata": {"name": "w1", "namespace": "demo"}, "spec": {"size": 3}})

    run("get", "pods", "-n", "demo")  # discovery is cached now; the CRD arrives after it
    cluster.call(add_widgets)
    assert [r[0] for r in run("get", "widgets", "-n", "demo").rows] == ["w1"]
    assert run("get", "wd", "w1", "-n", "demo", "-o", "json").document["spec"] == {"size": 3}
    assert run("get", "widgets.example.com", "-n", "demo", "-o", "name").text == "widget.example.com/w1\n"
    with pytest.raises(BrokerError) as unknown:
        run("get", "gadgets", "-n", "demo")
    assert unknown.value.code == "unknown_resource_type"
