"""Changes that policy sends to an approver, on the dev stack's cluster: the masked dry-run diff the
approvers see (``ExecuteService.preview``) and the run the approval workflow makes afterwards
(``ExecuteService.run``), driven in-process with the same catalog, policy, Key Vault, journal and
cluster the devhost uses. Until the approval workflow lands this stands in for its final step."""

from __future__ import annotations

import json
import uuid

import pytest

from broker.execute import CallContext, ExecuteBody
from broker.execute.service import decided
from broker.journal.events import Subject

pytestmark = pytest.mark.e2e

CONFIG = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "release-notes", "namespace": "demo"},
          "data": {"VERSION": "2.4.1", "CONTACT": "release-team@contoso.com"}}


@pytest.fixture(scope="module")
def broker(stack):
    from broker.runtime import Broker
    from broker.settings import Settings
    from devhost.credentials import DevIdentityCredential

    with pytest.MonkeyPatch.context() as env:
        for name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
            env.setenv(name, stack.env[name])
        settings = Settings(**{k[len("BROKER_"):].lower(): v for k, v in stack.env.items() if k.startswith("BROKER_")})
        instance = Broker.from_settings(settings, credential=DevIdentityCredential(stack.issuer, "broker"))
        yield instance
        instance.close()


@pytest.fixture(scope="module")
def journal(broker):
    return broker.journal_reader


@pytest.fixture(scope="module")
def principal(broker, stack):
    return broker.validator.principal_from_header(f"Bearer {stack.token('devin')}")


def evaluate(broker, principal, argv, manifest=None):
    body = ExecuteBody.parse({"target": "demo-k8s", "kubectl": argv, "manifest": manifest, "reason": "INC-42"}
                             if manifest is not None else {"target": "demo-k8s", "kubectl": argv, "reason": "INC-42"})
    return broker.execute.evaluate(principal, body)


def run_approved(broker, principal, target, command, classification, decision):
    """What the approval workflow does once the request is approved: run the exact command, once."""
    subject = decided(Subject(request_id=str(uuid.uuid4()), principal=principal.describe(),
                              client=CallContext().to_dict(), reason="INC-42"),
                      target, command, classification, decision)
    return broker.execute.run(principal, target, command, classification, decision, subject)


def replicas(api) -> int:
    r = api.execute({"target": "demo-k8s", "kubectl": ["get", "deploy", "web", "-n", "demo", "-o", "json"]})
    return r.json()["document"]["spec"]["replicas"]


def test_scale_with_approval(broker, principal, journal, api) -> None:
    target, command, classification, decision = evaluate(broker, principal,
                                                         ["scale", "deployment/web", "--replicas=4", "-n", "demo"])
    assert (decision.effect, decision.rule_id, classification.risk.value) == \
        ("approve", "agents-change-demo-k8s-with-approval", "write")
    preview = broker.execute.preview(principal, target, command, decision, request_id="preview-scale")
    assert "-  replicas: 3\n+  replicas: 4\n" in preview.diff
    assert replicas(api) == 3
    assert journal.get(preview.record_id).record.event == "execute.preview"
    try:
        done = run_approved(broker, principal, target, command, classification, decision)
        assert done.result.text == "deployment.apps/web scaled\n" and replicas(api) == 4
        outcome = journal.get(done.record_id).record
        assert outcome.outcome["operations"][-1]["subresource"] == "scale"
        assert outcome.outcome["affected"] == 1 and outcome.response["text"] == "deployment.apps/web scaled\n"
    finally:
        run_approved(broker, principal, *evaluate(broker, principal,
                                                  ["scale", "deployment/web", "--replicas=3", "-n", "demo"]))
    assert replicas(api) == 3


def test_apply_with_a_dry_run_diff_then_delete(broker, principal, journal, api) -> None:
    target, command, classification, decision = evaluate(broker, principal, ["apply"], CONFIG)
    assert decision.effect == "approve" and classification.details["resource"] == "configmaps"
    preview = broker.execute.preview(principal, target, command, decision, request_id="preview-apply")
    diff = preview.diff
    assert diff.startswith("--- live/demo/configmap/release-notes\n+++ merged/demo/configmap/release-notes\n")
    assert "+  VERSION: 2.4.1\n" in diff
    assert "release-team@contoso.com" not in diff and preview.masked.get("email") == 1
    get = {"target": "demo-k8s", "kubectl": ["get", "configmap", "release-notes", "-n", "demo"]}
    assert api.execute(get).status_code == 404  # the dry run created nothing

    applied = run_approved(broker, principal, target, command, classification, decision)
    assert applied.result.text == "configmap/release-notes serverside-applied\n"
    assert api.execute(get).status_code == 200
    record = journal.get(applied.record_id).record
    assert record.command["manifest"] == CONFIG
    assert record.outcome["operations"][-1] == {"group": "", "version": "v1", "resource": "configmaps",
                                                "verb": "apply", "namespace": "demo", "name": "release-notes"}

    deletion = evaluate(broker, principal, ["delete", "configmap", "release-notes", "-n", "demo"])
    assert (deletion[3].effect, deletion[2].risk.value) == ("approve", "destructive")
    removal = broker.execute.preview(principal, *deletion[:2], deletion[3], request_id="preview-delete")
    assert "-kind: ConfigMap\n" in removal.diff
    deleted = run_approved(broker, principal, *deletion)
    assert deleted.result.text == 'configmap "release-notes" deleted\n'
    assert api.execute(get).status_code == 404


def test_reads_and_exec_have_no_preview(broker, principal) -> None:
    target, command, _, decision = evaluate(broker, principal, ["get", "pods", "-n", "demo"])
    assert broker.execute.preview(principal, target, command, decision, request_id="none") is None


def test_secret_values_in_commands_are_refused_and_not_journaled(api, journal) -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x", "namespace": "demo"},
              "stringData": {"password": "hunter2-hunter2"}}
    r = api.execute({"target": "demo-k8s", "kubectl": ["apply"], "manifest": secret})
    assert r.status_code == 400 and r.json()["code"] == "secret_values_in_command"
    patch = api.execute({"target": "demo-k8s", "kubectl": ["patch", "secret", "db-credentials", "-n", "demo", "-p",
                                                           '{"stringData":{"password":"hunter2-hunter2"}}']})
    assert patch.status_code == 400 and patch.json()["code"] == "secret_values_in_command"
    assert "hunter2" not in r.text + patch.text
    refusals = [s.record for s in journal.recent(limit=5) if s.record.outcome.get("code") == "secret_values_in_command"]
    assert len(refusals) == 2 and all("hunter2" not in json.dumps(rec.to_dict()) for rec in refusals)
