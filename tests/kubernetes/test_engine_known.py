"""Known-plaintext masking through the engine and the execute path's masking, on a fresh stand-in
cluster per test: what a pod can print of its Secrets, what refuses to run when a Secret cannot be
read, and how fresh the values are."""

from __future__ import annotations

import base64
import time

import pytest

from broker.problems import BrokerError
from devhost.kubernetes.controller import record_event
from devhost.kubernetes.demo import DEMO_API_KEY, DEMO_BACKUP_KEY, DEMO_PASSWORD


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def stdout(run, pod: str, *command: str) -> str:
    result = run("exec", pod, "-n", "demo", "--", *command)
    assert result.document["exit_code"] == 0, result.document
    return result.document["stdout"]


@pytest.mark.parametrize("command", [
    ("printenv", "DATABASE_PASSWORD"),
    ("printenv", "PAYMENT_API_KEY"),  # through envFrom
    ("cat", "/etc/secret/password"),  # a mounted secret volume
    ("sh", "-c", "echo $DATABASE_PASSWORD | base64"),
    ("sh", "-c", 'printf %s "$DATABASE_PASSWORD" | base64 -w0'),
    ("base64", "/etc/secret/password"),
    ("sh", "-c", "cat /etc/secret/password | xxd -p"),
    ("od", "-An", "-tx1", "/etc/secret/password"),
    ("sh", "-c", "echo $(cat /etc/secret/password) | rev"),
    ("sh", "-c", "printenv DATABASE_PASSWORD | fold -w 4"),
    ("env",),
])
def test_what_a_pod_prints_of_its_secrets_is_masked(run, pods, command) -> None:
    out = stdout(run, pods()[0], *command)
    assert "[secret:" in out
    for value in (DEMO_PASSWORD, DEMO_API_KEY):
        assert value not in out and b64(value)[:12] not in out and value.encode().hex()[:12] not in out
        assert value[::-1] not in out and value[:8] not in out.replace("\n", "")


def test_the_placeholder_is_the_secret_objects_own(run, pods) -> None:
    printed = stdout(run, pods()[0], "printenv", "DATABASE_PASSWORD").strip()
    secret = run("get", "secret", "db-credentials", "-n", "demo", "-o", "json").document
    assert secret["data"]["password"] == printed
    assert stdout(run, pods()[0], "base64", "/etc/secret/password").strip() == printed


def test_short_values_are_masked_as_whole_lines_only(run, pods) -> None:
    assert stdout(run, pods()[0], "cat", "/etc/secret/username").startswith("[secret:")  # "web"
    assert stdout(run, pods()[0], "hostname") == pods()[0] + "\n"  # web-... stays
    assert run("get", "deployment", "web", "-n", "demo", "-o", "json").document["metadata"]["name"] == "web"


def test_unrelated_output_is_unchanged(run, pods) -> None:
    assert stdout(run, pods()[0], "sh", "-c", "echo hello | base64") == "aGVsbG8K\n"
    assert stdout(run, pods()[0], "ls", "/etc/secret") == "password\nusername\n"


def test_logs_describe_and_events_carrying_values(run, cluster, pods) -> None:
    pod = pods()[0]

    def plant() -> None:
        lines = cluster.emulator.logs[("demo", pod, "web")]
        stamp = lines[-1][0]
        lines += [(stamp + 1, f'{{"msg": "retry", "dsn": "postgres://web:{DEMO_PASSWORD}@db/app"}}'),
                  (stamp + 2, f"backup uploaded with key={DEMO_BACKUP_KEY}"),
                  (stamp + 3, f"token b64={b64(DEMO_API_KEY)}")]
        record_event(cluster.emulator, cluster.emulator.find("", "pods", "demo", pod), "Failed",
                     f"probe failed: {DEMO_PASSWORD} rejected", component="kubelet")

    cluster.call(plant)
    for argv in (("logs", pod, "-n", "demo", "--tail", "3"), ("logs", "-l", "app=web", "-n", "demo"),
                 ("describe", "pod", pod, "-n", "demo"), ("get", "events", "-n", "demo", "-o", "yaml"),
                 ("get", "events", "-n", "demo", "-o", "json")):
        result = run(*argv)
        text = result.text if result.text is not None else str(result.document)
        for value in (DEMO_PASSWORD, DEMO_BACKUP_KEY, DEMO_API_KEY, b64(DEMO_API_KEY)):
            assert value not in text, argv
        assert "[secret:" in text and result.masked["secret"] >= 1


def test_a_secret_no_pod_references_is_masked_in_other_objects(run, cluster) -> None:
    cluster.call(cluster.emulator.store, "", "configmaps", {
        "metadata": {"name": "copied", "namespace": "demo"}, "data": {"note": f"old key {DEMO_BACKUP_KEY}"}})
    for output in ("json", "yaml"):
        result = run("get", "configmap", "copied", "-n", "demo", "-o", output)
        assert DEMO_BACKUP_KEY not in (result.text or str(result.document))


def test_a_referenced_secret_the_broker_cannot_read_stops_exec_and_logs(run, cluster, pods) -> None:
    pod = pods()[0]
    cluster.forbid("secrets", "demo", "web-api")
    changes = cluster.changes
    for argv in (("exec", pod, "-n", "demo", "--", "printenv", "PAYMENT_API_KEY"), ("logs", pod, "-n", "demo")):
        with pytest.raises(BrokerError) as refused:
            run(*argv)
        assert refused.value.code == "kubernetes_secrets_unreadable"
        assert refused.value.extra == {"secret": "web-api", "namespace": "demo"}
        assert DEMO_API_KEY not in refused.value.detail
    assert cluster.changes == changes  # the exec never reached the pod
    assert run("get", "pods", "-n", "demo").row_count == 3  # what needs no pod Secret still runs


def test_a_deleted_secret_a_pod_still_holds_stops_exec(run, cluster, pods) -> None:
    pod = pods()[0]
    assert "[secret:" in stdout(run, pod, "printenv", "DATABASE_PASSWORD")  # the container has started
    cluster.call(cluster.emulator.remove, "", "secrets", "demo", "db-credentials")
    with pytest.raises(BrokerError) as refused:
        run("exec", pod, "-n", "demo", "--", "printenv", "DATABASE_PASSWORD")
    assert refused.value.code == "kubernetes_secrets_unreadable"


def test_without_list_the_referenced_secrets_are_still_read_by_name(run, cluster, pods) -> None:
    cluster.forbid("secrets", "demo", verbs=("list",))
    out = stdout(run, pods()[0], "sh", "-c", "printenv DATABASE_PASSWORD; printenv PAYMENT_API_KEY")
    assert DEMO_PASSWORD not in out and DEMO_API_KEY not in out and out.count("[secret:") == 2
    assert run("get", "pods", "-n", "demo").row_count == 3  # a forbidden list masks nothing more, refuses nothing


def test_referenced_secrets_are_read_fresh_and_a_rotated_value_stays_masked(run, cluster, pods) -> None:
    pod = pods()[0]
    assert "[secret:" in stdout(run, pod, "printenv", "DATABASE_PASSWORD")  # caches the namespace, starts env

    def rotate() -> None:
        secret = cluster.emulator.find("", "secrets", "demo", "db-credentials")
        secret["data"]["password"] = b64("rotated-Password-42")
        cluster.emulator.store("", "secrets", secret)

    cluster.call(rotate)
    # the mounted file follows the Secret at once: read fresh, masked although the namespace cache is warm
    assert stdout(run, pod, "cat", "/etc/secret/password").startswith("[secret:")
    # the environment keeps the value the container started with: remembered, masked too
    old = stdout(run, pod, "printenv", "DATABASE_PASSWORD")
    assert DEMO_PASSWORD not in old and old.startswith("[secret:")


def test_a_new_unreferenced_secret_is_known_once_the_cache_expires(engine, run, cluster, pods) -> None:
    from broker.targets.kubernetes._secrets import SecretValues

    now = [time.monotonic()]
    engine._secrets = SecretValues(clock=lambda: now[0])  # the engine's clock, moved by the test
    assert "[secret:" in stdout(run, pods()[0], "printenv", "DATABASE_PASSWORD")
    cluster.call(cluster.emulator.store, "", "secrets", {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "late", "namespace": "demo"},
        "data": {"k": b64("late-arrival-value-77")}})
    echo = ("echo", "late-arrival-value-77")
    assert stdout(run, pods()[0], *echo) == "late-arrival-value-77\n"  # within 30 s: not yet known
    now[0] += 31
    assert stdout(run, pods()[0], *echo).startswith("[secret:")
