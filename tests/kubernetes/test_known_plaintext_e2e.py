"""Known-plaintext masking end to end through ``POST /api/execute`` on the dev stack (demo-k8s):
what a pod prints of its Secrets comes back masked, in the response and in the journal, and a
pod whose Secret the broker cannot read is refused with a precise problem."""

from __future__ import annotations

import base64
import json

import pytest

from devhost.kubernetes.demo import DEMO_API_KEY, DEMO_PASSWORD

pytestmark = pytest.mark.e2e


def kubectl(api, *argv: str):
    return api.execute({"target": "demo-k8s", "kubectl": list(argv)}, identity="devin")


@pytest.fixture(scope="module")
def journal(stack):
    from broker.journal import JournalReader, JournalStorage
    from broker.settings import Settings

    return JournalReader(JournalStorage.from_settings(Settings(
        storage_connection_string=stack.azurite.connection_string)))


@pytest.fixture(scope="module")
def web_pod(api) -> str:
    r = kubectl(api, "get", "pods", "-n", "demo", "-l", "app=web", "-o", "name")
    return sorted(r.json()["text"].split())[0].split("/", 1)[1]


@pytest.mark.parametrize("command", [
    ("printenv", "DATABASE_PASSWORD"),
    ("cat", "/etc/secret/password"),
    ("sh", "-c", "echo $DATABASE_PASSWORD | base64"),
    ("sh", "-c", "printenv PAYMENT_API_KEY | xxd -p"),
    # The pod's tools composed (issue 13's audit, a13): each leaked before the residue check.
    ("xxd", "/etc/secret/password"),  # two-byte hex groups beside a 16-character ASCII column
    ("xxd", "-c", "4", "/etc/secret/password"),  # the ASCII column four characters a line
    ("od", "-A", "x", "-t", "x1", "/etc/secret/password"),  # an offset on every line
    ("od", "-t", "o2", "/etc/secret/password"),  # octal words
    ("sh", "-c", "echo $DATABASE_PASSWORD | base64 | base64"),
    ("sh", "-c", "echo $DATABASE_PASSWORD | rev | base64"),
    ("sh", "-c", "echo $DATABASE_PASSWORD | base64 | rev"),
    ("sh", "-c", "printenv PAYMENT_API_KEY | xxd -p | rev"),
    ("sh", "-c", "echo $DATABASE_PASSWORD | fold -w 7 | rev"),
])
def test_exec_output_is_masked_over_http(api, journal, web_pod, command) -> None:
    r = kubectl(api, "exec", web_pod, "-n", "demo", "--", *command)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["document"]["stdout"].startswith("[secret:") and body["masked"]["secret"] >= 1
    journaled = json.dumps(journal.get(body["record_id"]).record.to_dict(), default=str)
    for value in (DEMO_PASSWORD, DEMO_API_KEY):
        for shown in (r.text, journaled):
            assert value not in shown and base64.b64encode(value.encode()).decode()[:12] not in shown
            assert value.encode().hex()[:12] not in shown
            pieces = {value[i:i + 8] for i in range(len(value) - 7)} - {"password"}  # the file's name
            assert not [p for p in pieces if p in shown]  # no 8 characters of it


def test_an_unreadable_referenced_secret_is_refused_over_http(api, stack, web_pod) -> None:
    stack.kubernetes.forbid("secrets", "demo", "db-credentials")
    try:
        r = kubectl(api, "exec", web_pod, "-n", "demo", "--", "printenv", "DATABASE_PASSWORD")
    finally:
        stack.kubernetes.forbidden.clear()
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["code"] == "kubernetes_secrets_unreadable" and problem["secret"] == "db-credentials"
    assert DEMO_PASSWORD not in r.text
