"""``python -m broker kubectl``: the agent-side CLI against the dev stack, printing as kubectl would."""

from __future__ import annotations

import json

import httpx
import pytest

from broker.cli import main
from devhost.kubernetes.demo import DEMO_PASSWORD

pytestmark = pytest.mark.e2e


@pytest.fixture
def cli(stack, monkeypatch, capsys):
    monkeypatch.setenv("BROKER_URL", stack.base_url)
    monkeypatch.setenv("BROKER_TOKEN", stack.token("devin"))

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["kubectl", "--target", "demo-k8s", *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_get_prints_kubectl_columns(cli) -> None:
    code, out, _ = cli("get", "pods", "-n", "demo", "-l", "app=web")
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert len(lines) == 4 and all(line.startswith("web-") and " Running " in line for line in lines[1:])


def test_secret_yaml_is_masked(cli) -> None:
    code, out, err = cli("get", "secret", "db-credentials", "-n", "demo", "-o", "yaml")
    assert code == 0 and out.startswith("apiVersion: v1\nkind: Secret\n")
    assert DEMO_PASSWORD not in out and "password: '[secret:" in out
    assert err.startswith("broker: masked ")


def test_exec_prints_output_and_returns_the_exit_code(cli) -> None:
    _, names, _ = cli("get", "pods", "-n", "demo", "-l", "app=web", "-o", "name")
    pod = names.split()[0]
    code, out, _ = cli("exec", pod, "-n", "demo", "--", "sh", "-c", "echo from the pod; exit 7")
    assert (code, out) == (7, "from the pod\n")


def test_apply_reads_the_file_on_the_agent_side(cli, stack, tmp_path) -> None:
    manifest = tmp_path / "cm.yaml"
    manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cli-demo\n  namespace: demo\n"
                        "data:\n  A: b\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cli-demo-2\n"
                        "  namespace: demo\n")
    code, out, _ = cli("--json", "--no-wait", "apply", "-f", str(manifest))
    pending = json.loads(out)
    assert code == 0 and pending["status"] == "pending"  # a change waits for an approver
    request = httpx.get(pending["status_url"], headers={"Authorization": f"Bearer {stack.token('devin')}"}).json()
    assert [d["metadata"]["name"] for d in request["command"]["manifest"]] == ["cli-demo", "cli-demo-2"]
    code, _, err = cli("apply", "-f", str(tmp_path / "missing.yaml"))
    assert code == 2 and "cannot read the manifest" in err


def test_json_output_and_refusals(cli) -> None:
    code, out, _ = cli("--json", "get", "deploy", "web", "-n", "demo", "-o", "json")
    body = json.loads(out)
    assert code == 0 and body["document"]["kind"] == "Deployment" and body["risk"] == "read"
    code, _, err = cli("get", "pods", "--kubeconfig", "/root/.kube/config")
    assert code == 1 and "error refused_argument (400)" in err and "--kubeconfig is not allowed" in err


def test_help_and_empty_arguments(capsys) -> None:
    with pytest.raises(SystemExit) as shown:
        main(["kubectl", "--help"])
    assert shown.value.code == 0 and "apply -f FILE" in capsys.readouterr().out
    assert main(["kubectl", "--target", "demo-k8s"]) == 2
