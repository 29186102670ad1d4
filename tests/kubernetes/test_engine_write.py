"""The changing verbs against a fresh stand-in cluster: what they change, what they refuse, and the
server-side dry run approvers see (a masked diff; nothing persisted)."""

from __future__ import annotations

import pytest

from broker.problems import BrokerError
from broker.targets.base import Command, ExecutionLimits

NEW_DEPLOYMENT = {
    "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api", "namespace": "demo"},
    "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "api"}},
             "template": {"metadata": {"labels": {"app": "api"}},
                          "spec": {"containers": [{"name": "api", "image": "ghcr.io/demo/api:1.0"}]}}}}


def deployment(cluster, name: str = "web") -> dict:
    return cluster.call(lambda: cluster.emulator.find("apps", "deployments", "demo", name))


def test_scale_changes_replicas_and_pods(run, cluster, pods) -> None:
    result = run("scale", "deployment/web", "--replicas=5", "-n", "demo")
    assert result.text == "deployment.apps/web scaled\n" and result.affected == 1
    assert deployment(cluster)["spec"]["replicas"] == 5 and len(pods()) == 5
    assert result.operations[-1] == {"group": "apps", "version": "v1", "resource": "deployments", "verb": "patch",
                                     "namespace": "demo", "name": "web", "subresource": "scale"}


def test_scale_precondition_leaves_everything_as_it_was(run, cluster) -> None:
    with pytest.raises(BrokerError) as refused:
        run("scale", "deploy", "web", "--replicas", "1", "--current-replicas", "2", "-n", "demo")
    assert refused.value.code == "precondition_failed"
    assert deployment(cluster)["spec"]["replicas"] == 3
    with pytest.raises(BrokerError) as unscalable:
        run("scale", "configmap", "web-config", "--replicas", "1", "-n", "demo")
    assert unscalable.value.code == "kubernetes_invalid"


def test_delete_pod_is_replaced_by_its_replica_set(run, pods) -> None:
    before = pods()
    result = run("delete", "pod", before[0], "-n", "demo")
    assert result.text == f'pod "{before[0]}" deleted\n'
    after = pods()
    assert before[0] not in after and len(after) == 3


def test_delete_by_selector_and_missing_objects(run, cluster, pods) -> None:
    with pytest.raises(BrokerError) as missing:
        run("delete", "pods", pods()[0], "nope", "-n", "demo")
    assert missing.value.code == "kubernetes_not_found"
    assert len(pods()) == 3  # the existing one was not deleted either
    assert run("delete", "pods", "nope", "-n", "demo", "--ignore-not-found").text == ""
    result = run("delete", "deployment", "-l", "app=web", "-n", "demo")
    assert result.text == 'deployment.apps "web" deleted\n'
    assert deployment(cluster) is None and pods() == []  # replica sets and pods were collected


def test_delete_respects_the_object_cap(run) -> None:
    with pytest.raises(BrokerError) as capped:
        run("delete", "pods", "--all", "-n", "demo", limits=ExecutionLimits(max_rows=2))
    assert capped.value.code == "too_many_objects"


def test_rollout_restart_undo_and_history(run, cluster) -> None:
    revision = "deployment.kubernetes.io/revision"
    restarted = run("rollout", "restart", "deployment/web", "-n", "demo")
    assert restarted.text == "deployment.apps/web restarted\n"
    dep = deployment(cluster)
    assert "kubectl.kubernetes.io/restartedAt" in dep["spec"]["template"]["metadata"]["annotations"]
    assert dep["metadata"]["annotations"][revision] == "2"
    assert run("rollout", "status", "deploy/web", "-n", "demo").status == "complete"
    undone = run("rollout", "undo", "deployment/web", "-n", "demo")
    assert undone.text == "deployment.apps/web rolled back to revision 1\n"
    dep = deployment(cluster)
    assert "annotations" not in dep["spec"]["template"]["metadata"]
    assert dep["metadata"]["annotations"][revision] == "3"
    again = run("rollout", "undo", "deployment/web", "-n", "demo", "--to-revision=3")
    assert "skipped rollback" in again.text and again.affected == 0
    with pytest.raises(BrokerError) as unknown:
        run("rollout", "undo", "deployment/web", "-n", "demo", "--to-revision=9")
    assert unknown.value.code == "kubernetes_invalid"
    with pytest.raises(BrokerError) as wrong_kind:
        run("rollout", "restart", "service/web", "-n", "demo")
    assert wrong_kind.value.code == "kubernetes_invalid"


def test_apply_creates_then_updates(run, cluster) -> None:
    created = run("apply", manifest=NEW_DEPLOYMENT)
    assert created.text == "deployment.apps/api serverside-applied\n" and created.affected == 1
    assert deployment(cluster, "api")["spec"]["replicas"] == 2
    assert created.operations[-1]["verb"] == "apply"
    assert created.document["items"][0]["metadata"]["name"] == "api"
    changed = {**NEW_DEPLOYMENT, "spec": {**NEW_DEPLOYMENT["spec"], "replicas": 4}}
    run("apply", "--force-conflicts", manifest=[changed, {"apiVersion": "v1", "kind": "ConfigMap",
                                                          "metadata": {"name": "api-config", "namespace": "demo"},
                                                          "data": {"MODE": "fast"}}])
    assert deployment(cluster, "api")["spec"]["replicas"] == 4
    assert cluster.call(lambda: cluster.emulator.find("", "configmaps", "demo", "api-config"))["data"] == \
        {"MODE": "fast"}


def test_preview_is_a_masked_diff_and_changes_nothing(engine, cluster, target_for, token_secret) -> None:
    from broker.execute import mask_result
    from broker.masking import Masker

    target = target_for(cluster)
    changed = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "demo"},
               "spec": {"replicas": 6, "template": {"spec": {"containers": [
                   {"name": "web", "image": "nginx:1.28",
                    "env": [{"name": "API_TOKEN", "value": "tok-literal-value-123"}]}]}}}}
    result = engine.preview(target, Command("kubectl", argv=("apply",), manifest=changed), token_secret,
                            ExecutionLimits())
    mask_result(engine, Masker(b"0123456789abcdef0123"), result, target)
    diff = result.text
    assert diff.startswith("--- live/demo/deployment.apps/web\n+++ merged/demo/deployment.apps/web\n")
    assert "-  replicas: 3\n" in diff and "+  replicas: 6\n" in diff
    assert "-      - image: nginx:1.27\n" in diff or "-        image: nginx:1.27\n" in diff
    assert "tok-literal-value-123" not in diff and "[secret:" in diff
    assert result.document is None
    assert deployment(cluster)["spec"]["replicas"] == 3  # nothing persisted
    assert all(op["verb"] in ("get", "apply") for op in result.operations)

    created = engine.preview(target, Command("kubectl", argv=("apply",), manifest=NEW_DEPLOYMENT), token_secret,
                             ExecutionLimits())
    mask_result(engine, Masker(b"0123456789abcdef0123"), created, target)
    assert "--- live/demo/deployment.apps/api" in created.text and "+kind: Deployment\n" in created.text
    assert deployment(cluster, "api") is None

    scale = engine.preview(target, Command("kubectl", argv=("scale", "deploy/web", "--replicas=1", "-n", "demo")),
                           token_secret, ExecutionLimits())
    mask_result(engine, Masker(b"0123456789abcdef0123"), scale, target)
    assert "-  replicas: 3\n+  replicas: 1\n" in scale.text
    delete = engine.preview(target, Command("kubectl", argv=("delete", "svc", "web", "-n", "demo")), token_secret,
                            ExecutionLimits())
    mask_result(engine, Masker(b"0123456789abcdef0123"), delete, target)
    assert "-kind: Service\n" in delete.text and "+kind" not in delete.text
    assert cluster.call(lambda: cluster.emulator.find("", "services", "demo", "web")) is not None
    assert engine.preview(target, Command("kubectl", argv=("get", "pods")), token_secret, ExecutionLimits()) is None


def test_patch_kinds(run, cluster) -> None:
    merged = run("patch", "deploy", "web", "-n", "demo", "-p", '{"metadata":{"labels":{"team":"payments"}}}')
    assert merged.text == "deployment.apps/web patched\n"
    assert deployment(cluster)["metadata"]["labels"] == {"app": "web", "team": "payments"}
    json_patch = run("patch", "deploy", "web", "-n", "demo", "--type", "json",
                     "-p", '[{"op":"replace","path":"/spec/replicas","value":2}]')
    assert json_patch.affected == 1 and deployment(cluster)["spec"]["replicas"] == 2
    same = run("patch", "deploy", "web", "-n", "demo", "--type=merge", "-p", '{"spec":{"replicas":2}}')
    assert same.text == "deployment.apps/web patched (no change)\n" and same.affected == 0
    with pytest.raises(BrokerError) as bad:
        run("patch", "deploy", "web", "-n", "demo", "--type", "json",
            "-p", '[{"op":"remove","path":"/spec/nothing"}]')
    assert bad.value.code == "kubernetes_invalid"


def test_label_and_annotate(run, cluster, pods) -> None:
    result = run("label", "pods", "-l", "app=web", "tier=frontend", "-n", "demo")
    assert result.affected == 3 and result.text.count("labeled") == 3
    with pytest.raises(BrokerError) as conflict:
        run("label", "pods", "--all", "tier=backend", "-n", "demo")
    assert conflict.value.code == "precondition_failed"
    assert {cluster.call(lambda n=n: cluster.emulator.find("", "pods", "demo", n))["metadata"]["labels"]["tier"]
            for n in pods()} == {"frontend"}
    run("label", "pods", "--all", "tier=backend", "--overwrite", "-n", "demo")
    removed = run("label", "pod", pods()[0], "tier-", "-n", "demo")
    assert removed.text.endswith(" unlabeled\n")
    note = run("annotate", "deploy", "web", "owner=sre@contoso.com", "-n", "demo")
    assert note.text == "deployment.apps/web annotated\n"
    assert deployment(cluster)["metadata"]["annotations"]["owner"] == "sre@contoso.com"


def test_cordon_and_uncordon(run, cluster) -> None:
    node = "aks-nodepool1-31415926-vmss000000"
    assert run("cordon", node).text == f"node/{node} cordoned\n"
    assert cluster.call(lambda: cluster.emulator.find("", "nodes", None, node))["spec"]["unschedulable"] is True
    assert run("get", "nodes").rows[0][1] == "Ready,SchedulingDisabled"
    assert run("cordon", node).affected == 0
    run("uncordon", node)
    assert "unschedulable" not in cluster.call(lambda: cluster.emulator.find("", "nodes", None, node))["spec"]


def test_read_only_targets_never_change(run, cluster) -> None:
    for argv in (("scale", "deploy/web", "--replicas=1", "-n", "demo"), ("delete", "pod", "x", "-n", "demo"),
                 ("exec", "x", "-n", "demo", "--", "true"), ("cordon", "n1")):
        with pytest.raises(BrokerError) as refused:
            run(*argv, read_only=True)
        assert refused.value.code == "read_only_violation"
    assert run("get", "pods", "-n", "demo", read_only=True).rows
    assert deployment(cluster)["spec"]["replicas"] == 3


def test_unlisted_types_must_be_what_the_guard_assumed(run, cluster) -> None:
    import kmock

    def add_types() -> None:
        api = cluster.emulator
        api.resources["example.com/v1/clusterwidgets"] = kmock.ResourceInfo(kind="ClusterWidget", namespaced=False,
                                                                            verbs={"get", "list", "delete"})
        api.store("example.com", "clusterwidgets", {"metadata": {"name": "cw"}})

    cluster.call(add_types)
    assert run("get", "clusterwidgets").rows[0][0] == "cw"
    with pytest.raises(BrokerError) as mismatch:
        run("delete", "clusterwidgets", "cw")
    assert mismatch.value.code == "classification_mismatch"
    assert cluster.call(lambda: cluster.emulator.find("example.com", "clusterwidgets", None, "cw")) is not None
    with pytest.raises(BrokerError) as cluster_scoped:
        run("apply", manifest={"apiVersion": "example.com/v1", "kind": "ClusterWidget", "metadata": {"name": "x"}})
    assert cluster_scoped.value.code == "classification_mismatch"


def test_failed_calls_carry_their_operations(run) -> None:
    with pytest.raises(BrokerError) as missing:
        run("scale", "deploy/nope", "--replicas=1", "-n", "demo")
    assert missing.value.operations == [{"group": "apps", "version": "v1", "resource": "deployments", "verb": "get",
                                         "namespace": "demo", "name": "nope", "subresource": "scale"}]
