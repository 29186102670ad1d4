"""The kubectl grammar and its risk classes, as case tables: (argv, risk, details) and (argv, code)."""

from __future__ import annotations

import pytest

from broker.guard import Risk
from broker.guard.kubectl import REFUSED_FLAGS, parse_kubectl
from broker.guard.kubernetes import classify_kubectl, resolve_type
from broker.problems import BadRequest

DEPLOY = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "demo"},
          "spec": {"replicas": 2}}

CLASSIFIED = [
    # argv, risk, verb, resource, namespace, subresource
    ("get pods -n demo -l app=web", Risk.READ, "get", "pods", "demo", ""),
    ("get po", Risk.READ, "get", "pods", "default", ""),
    ("get Pod/web-1 -n demo -o json", Risk.READ, "get", "pods", "demo", ""),
    ("kubectl get deploy -A -o wide", Risk.READ, "get", "deployments", "*", ""),
    ("get nodes", Risk.READ, "get", "nodes", "", ""),
    ("get pods -n kube-system", Risk.READ, "get", "pods", "kube-system", ""),
    ("describe deployment web -n demo", Risk.READ, "describe", "deployments", "demo", ""),
    ("get secret db-credentials -n demo -o yaml", Risk.READ_SECRET, "get", "secrets", "demo", ""),
    ("describe secrets -n demo", Risk.READ_SECRET, "describe", "secrets", "demo", ""),
    ("get secrets -A", Risk.ADMIN, "get", "secrets", "*", ""),
    ("get secrets -n kube-system", Risk.ADMIN, "get", "secrets", "kube-system", ""),
    ("logs web-1 -n demo --tail 20 --since 1h -c web", Risk.READ, "logs", "pods", "demo", "log"),
    ("logs -l app=web -n demo --previous", Risk.READ, "logs", "pods", "demo", "log"),
    ("top pods -n demo", Risk.READ, "top", "pods", "demo", ""),
    ("top nodes", Risk.READ, "top", "nodes", "", ""),
    ("rollout status deployment/web -n demo", Risk.READ, "rollout status", "deployments", "demo", ""),
    ("exec web-1 -n demo -- ls /", Risk.EXEC, "exec", "pods", "demo", "exec"),
    ("exec web-1 -n kube-system -- ls /", Risk.ADMIN, "exec", "pods", "kube-system", "exec"),
    ("scale deployment/web --replicas=5 -n demo", Risk.WRITE, "scale", "deployments", "demo", "scale"),
    ("rollout restart deploy web -n demo", Risk.WRITE, "rollout restart", "deployments", "demo", ""),
    ("rollout undo deploy/web --to-revision=2 -n demo", Risk.WRITE, "rollout undo", "deployments", "demo", ""),
    ("patch deploy web -n demo -p {\"spec\":{\"replicas\":2}}", Risk.WRITE, "patch", "deployments", "demo", ""),
    ("label pods -l app=web tier=frontend --overwrite -n demo", Risk.WRITE, "label", "pods", "demo", ""),
    ("annotate deploy web note=hello -n demo", Risk.WRITE, "annotate", "deployments", "demo", ""),
    ("label secret db-credentials rotated=yes -n demo", Risk.WRITE, "label", "secrets", "demo", ""),
    ("delete pod web-1 -n demo", Risk.DESTRUCTIVE, "delete", "pods", "demo", ""),
    ("delete pods -l app=web -n demo", Risk.DESTRUCTIVE, "delete", "pods", "demo", ""),
    ("delete pods --all -n demo", Risk.DESTRUCTIVE, "delete", "pods", "demo", ""),
    ("delete namespace demo", Risk.ADMIN, "delete", "namespaces", "", ""),
    ("delete pv data-1", Risk.ADMIN, "delete", "persistentvolumes", "", ""),
    ("delete node aks-1", Risk.ADMIN, "delete", "nodes", "", ""),
    ("delete crd widgets.example.com", Risk.ADMIN, "delete", "customresourcedefinitions", "", ""),
    ("delete pod coredns-1 -n kube-system", Risk.ADMIN, "delete", "pods", "kube-system", ""),
    ("delete rolebinding admins -n demo", Risk.ADMIN, "delete", "rolebindings", "demo", ""),
    ("patch clusterrole view -p {\"rules\":[]}", Risk.ADMIN, "patch", "clusterroles", "", ""),
    ("scale deploy coredns --replicas=0 -n kube-system", Risk.ADMIN, "scale", "deployments", "kube-system",
     "scale"),
    ("label node aks-1 disk=ssd", Risk.ADMIN, "label", "nodes", "", ""),
    ("cordon aks-1", Risk.ADMIN, "cordon", "nodes", "", ""),
    ("uncordon node/aks-1", Risk.ADMIN, "uncordon", "nodes", "", ""),
    ("get widgets.example.com -n demo", Risk.READ, "get", "widgets", "demo", ""),
    ("delete widgets.v1.example.com w1 -n demo", Risk.DESTRUCTIVE, "delete", "widgets", "demo", ""),
]


@pytest.mark.parametrize(("line", "risk", "verb", "resource", "namespace", "subresource"), CLASSIFIED)
def test_classification(line: str, risk: Risk, verb: str, resource: str, namespace: str, subresource: str) -> None:
    c = classify_kubectl(tuple(_argv(line)))
    assert c.risk is risk, c.reason
    assert c.language == "kubernetes"
    assert (c.details["verb"], c.details["resource"], c.details["namespace"], c.details["subresource"]) == \
        (verb, resource, namespace, subresource)
    assert c.reason


def _argv(line: str) -> list[str]:
    import shlex

    return shlex.split(line)


def test_custom_resources_are_marked_as_of_unknown_scope() -> None:
    c = classify_kubectl(("patch", "widgets.example.com", "w1", "-n", "demo", "-p", '{"a": 1}'))
    assert (c.risk, c.details["group"], c.details["scope"]) == (Risk.WRITE, "example.com", "unknown")
    assert "scope" not in classify_kubectl(("get", "pods")).details


APPLIED = [
    (DEPLOY, Risk.WRITE, "deployments", "demo"),
    ([DEPLOY, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}], Risk.WRITE,
     "configmaps,deployments", "default,demo"),
    ({"kind": "List", "apiVersion": "v1", "items": [DEPLOY]}, Risk.WRITE, "deployments", "demo"),
    ({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "x"}},
     Risk.ADMIN, "clusterrolebindings", ""),
    ({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}, Risk.ADMIN, "namespaces", ""),
    ({**DEPLOY, "metadata": {"name": "web", "namespace": "kube-system"}}, Risk.ADMIN, "deployments", "kube-system"),
    ({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}, Risk.WRITE, "widget", "default"),
]


@pytest.mark.parametrize(("manifest", "risk", "resource", "namespace"), APPLIED)
def test_apply_is_classified_from_its_manifest(manifest: object, risk: Risk, resource: str, namespace: str) -> None:
    c = classify_kubectl(("apply",), manifest)
    assert (c.risk, c.details["verb"], c.details["resource"], c.details["namespace"]) == \
        (risk, "apply", resource, namespace)


REFUSED = [
    # unsupported verbs and plugins
    ("version", "unsupported_verb"), ("cp pod:/etc/passwd .", "unsupported_verb"), ("proxy", "unsupported_verb"),
    ("port-forward web 8080:80", "unsupported_verb"), ("auth can-i --list", "unsupported_verb"),
    ("oidc-login get-token", "unsupported_verb"), ("krew install foo", "unsupported_verb"),
    ("rollout pause deploy/web", "unsupported_verb"), ("", "unsupported_command"),
    # flags that pick the cluster, the identity or a file
    ("get pods --kubeconfig /home/me/.kube/config", "refused_argument"),
    ("get pods --kubeconfig=/tmp/k", "refused_argument"), ("get pods --server https://evil:6443", "refused_argument"),
    ("get pods -s https://evil:6443", "refused_argument"), ("get pods --token abc", "refused_argument"),
    ("get pods --as system:admin", "refused_argument"), ("get pods --as-group system:masters", "refused_argument"),
    ("get pods --as-uid 0", "refused_argument"), ("get pods --context prod", "refused_argument"),
    ("get pods --cluster prod", "refused_argument"), ("get pods --user admin", "refused_argument"),
    ("get pods --certificate-authority /tmp/ca", "refused_argument"),
    ("get pods --insecure-skip-tls-verify", "refused_argument"),
    ("get pods --insecure-skip-tls-verify=true", "refused_argument"),
    ("apply -f /etc/kubernetes/admin.conf", "refused_argument"), ("apply --filename=./m.yaml", "refused_argument"),
    ("delete -f ./m.yaml", "refused_argument"), ("apply -k ./overlay", "refused_argument"),
    ("get --raw /api/v1/namespaces/kube-system/secrets", "refused_argument"),
    ("exec web -n demo --token x -- ls", "refused_argument"),
    # shell metacharacters are characters, never commands: invalid names are refused
    (["get", "pods;rm -rf /"], "invalid_argument"), (["get", "pods$(id)"], "invalid_argument"),
    (["get", "pods", "`id`"], "invalid_argument"), (["get", "pods|sh"], "invalid_argument"),
    (["get", "pods", "-n", "demo&&reboot"], "invalid_argument"),
    (["get", "pods", "-l", "app=web;id"], "invalid_argument"), (["logs", "web>/tmp/x"], "invalid_argument"),
    (["delete", "pod", "../../secrets/x"], "invalid_argument"), (["get", "pods", "x\ny"], "invalid_argument"),
    (["describe", "pods", "-l", "$(curl evil)"], "invalid_argument"),
    ("get pods,secrets", "invalid_argument"), ("get all", "invalid_argument"),
    # non-interactive, unbounded or unsupported options
    ("exec -it web -- sh", "unsupported_flag"), ("exec -i web -- sh", "unsupported_flag"),
    ("exec web --tty -- sh", "unsupported_flag"), ("logs -f web", "unsupported_flag"),
    ("get pods -w", "unsupported_flag"), ("get pods -o jsonpath={.items}", "unsupported_flag"),
    ("get pods -o go-template={{.}}", "unsupported_flag"), ("get pods --sort-by=.metadata.name", "unsupported_flag"),
    ("delete pod web --force", "unsupported_flag"), ("get pods --v=9", "unsupported_flag"),
    # malformed
    ("exec web -- ", "invalid_argument"), ("exec web", "invalid_argument"), ("scale deploy web", "invalid_argument"),
    ("delete pods -n demo", "invalid_argument"), ("delete pods web -l app=web", "invalid_argument"),
    ("get pods -n demo -A", "invalid_argument"),
    ("get pod web-1 -A", "invalid_argument"), ("get pods -n Demo_NS", "invalid_argument"),
    ("logs web --since 10x", "invalid_argument"), ("logs web --tail lots", "invalid_argument"),
    ("patch deploy web -p [1]", "invalid_argument"), ("patch deploy web --type json -p {}", "invalid_argument"),
    ("label pods web", "invalid_argument"), (["label", "pods", "web", "bad key=v"], "invalid_argument"),
    ("top services", "invalid_argument"), ("get pods -n", "invalid_argument"),
    ("get pods -n demo -n prod", "invalid_argument"), (["get", "pods\x00"], "invalid_argument"),
    ("rollout status deploy/web --to-revision 2", "invalid_argument"),
    # Secret values never travel in a command
    ("patch secret db-credentials -p {\"data\":{\"password\":\"eA==\"}}", "secret_values_in_command"),
]


@pytest.mark.parametrize(("line", "code"), REFUSED)
def test_refusals(line: str | list[str], code: str) -> None:
    argv = _argv(line) if isinstance(line, str) else line
    with pytest.raises(BadRequest) as refused:
        classify_kubectl(tuple(argv))
    assert refused.value.code == code, refused.value.detail
    assert refused.value.detail


def test_every_refused_flag_is_refused_with_its_reason() -> None:
    for flag, reason in REFUSED_FLAGS.items():
        with pytest.raises(BadRequest) as refused:
            classify_kubectl(("get", "pods", flag, "x"))
        assert refused.value.code == "refused_argument"
        assert reason in refused.value.detail


def test_unsupported_verb_lists_what_is_supported() -> None:
    with pytest.raises(BadRequest) as refused:
        classify_kubectl(("debug", "web"))
    problem = refused.value.to_problem()
    assert problem["supported_verbs"][:3] == ["get", "describe", "logs"]
    assert "Supported: get, describe, logs" in problem["detail"]


def test_exec_command_keeps_shell_metacharacters_as_literal_arguments() -> None:
    cmd = parse_kubectl(["exec", "web", "-n", "demo", "--", "echo", "$(id)", ";", "rm -rf /", "|", "`reboot`"])
    assert cmd.command == ("echo", "$(id)", ";", "rm -rf /", "|", "`reboot`")
    # a flag after "--" belongs to the command, not to kubectl
    assert parse_kubectl(["exec", "web", "--", "curl", "--token", "x"]).command == ("curl", "--token", "x")


APPLY_REFUSED = [
    (None, "invalid_argument"), ([], "invalid_manifest"), ("text", "invalid_manifest"),
    ({"kind": "Deployment", "metadata": {"name": "x"}}, "invalid_manifest"),
    ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "x-"}}, "invalid_manifest"),
    ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "Not Valid"}},
     "invalid_manifest"),
    ([DEPLOY] * 51, "invalid_manifest"),
    ({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"p": "x"}},
     "secret_values_in_command"),
]


@pytest.mark.parametrize(("manifest", "code"), APPLY_REFUSED)
def test_apply_manifest_refusals(manifest: object, code: str) -> None:
    with pytest.raises(BadRequest) as refused:
        classify_kubectl(("apply",), manifest)
    assert refused.value.code == code


def test_namespace_flag_must_agree_with_the_manifest() -> None:
    with pytest.raises(BadRequest) as refused:
        classify_kubectl(("apply", "-n", "prod"), DEPLOY)
    assert refused.value.code == "invalid_manifest"


def test_a_manifest_goes_with_apply_only() -> None:
    with pytest.raises(BadRequest) as refused:
        classify_kubectl(("get", "pods"), DEPLOY)
    assert refused.value.code == "invalid_argument"


@pytest.mark.parametrize(("token", "plural", "group", "builtin"), [
    ("po", "pods", "", True), ("Pod", "pods", "", True), ("deploy", "deployments", "apps", True),
    ("deployments.apps", "deployments", "apps", True), ("deployments.v1.apps", "deployments", "apps", True),
    ("hpa", "horizontalpodautoscalers", "autoscaling", True), ("crd", "customresourcedefinitions",
                                                               "apiextensions.k8s.io", True),
    ("widgets", "widgets", None, False), ("widgets.example.com", "widgets", "example.com", False),
    ("pods.example.com", "pods", "example.com", False),
])
def test_resource_types(token: str, plural: str, group: str | None, builtin: bool) -> None:
    t = resolve_type(token)
    assert (t.plural, t.group, t.builtin) == (plural, group, builtin)


def test_flag_spellings() -> None:
    assert parse_kubectl(["get", "pods", "-ndemo", "-owide"]).namespace == "demo"
    assert parse_kubectl(["get", "pods", "-n=demo", "--output=json"]).output == "json"
    assert parse_kubectl(["logs", "web", "--tail=-1"]).tail == -1
    assert parse_kubectl(["logs", "web", "--since", "1h30m"]).since_seconds == 5400
    assert parse_kubectl(["get", "pods", "--show-labels=false"]).show_labels is False
    label = parse_kubectl(["label", "pods", "web", "a=b", "c-", "--overwrite"])
    assert (label.changes, label.overwrite) == ({"a": "b", "c": None}, True)
