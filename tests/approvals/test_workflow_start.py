"""Starting the approval workflow through the execute service's port: a start that fails leaves no
request pending that nobody watches (real approval store on Azurite, the journal read back)."""

from __future__ import annotations

from typing import Any

import pytest

from broker.execute import APPROVAL_ORCHESTRATOR, start_or_abandon
from broker.journal import events as journaled
from broker.problems import BrokerError
from tests.approvals.conftest import held_request


class Starter:
    """A workflow starter that records what it was asked, or fails like a Durable client can."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.started: list[tuple[str, str, dict[str, Any]]] = []

    def start(self, orchestrator: str, request_id: str, payload: dict[str, Any]) -> None:
        if self.error is not None:
            raise self.error
        self.started.append((orchestrator, request_id, payload))


def test_the_workflow_starts_with_the_request_id_as_instance_and_its_deadline(parts):
    held = parts.service.held(held_request(parts, quorum=2))
    starter = Starter()
    start_or_abandon(starter, parts.service, APPROVAL_ORCHESTRATOR, held)
    assert starter.started == [(APPROVAL_ORCHESTRATOR, held.request_id,
                                {"request_id": held.request_id, "quorum": 2, "deadline": held.expires_at})]
    assert parts.store.get(held.request_id).status == "pending"


@pytest.mark.parametrize("error", [ConnectionError("refused"), TimeoutError(), RuntimeError("500 from the host")])
def test_a_workflow_that_cannot_start_fails_the_request_and_says_503(parts, error):
    held = parts.service.held(held_request(parts))
    with pytest.raises(BrokerError) as caught:
        start_or_abandon(Starter(error), parts.service, APPROVAL_ORCHESTRATOR, held)
    assert (caught.value.status, caught.value.code) == (503, "workflow_unavailable")
    assert parts.store.get(held.request_id).status == "failed"
    assert ("approval.failed", "failed", "workflow_unavailable") in parts.events(held.request_id)


def test_the_pending_answer_names_the_request_and_where_to_poll(parts):
    request = held_request(parts)
    body = parts.service.held(request).to_dict()
    assert body["request_id"] == request.request_id and body["status"] == "pending"
    assert body["status_url"].endswith(f"/api/requests/{request.request_id}")
    assert body["approval"]["quorum"] == request.quorum and "resubmitted" not in body
    assert parts.service.held(request, resubmitted=True).to_dict()["resubmitted"] is True


def test_every_builder_carries_the_whole_subject_and_the_ticket():
    subject = journaled.Subject(request_id="r1", principal={"object_id": "o"}, client={"ip": "127.0.0.1"},
                                reason="INC-1", ticket="CHG-7", target="t", command={"language": "sql"},
                                command_digest="sha256:x", classification={"risk": "write"},
                                decision={"effect": "approve"})
    records = [journaled.execute_denied(subject, "policy_denied"), journaled.execute_intent(subject),
               journaled.execute_outcome(subject, {"status": "ok"}, started_at="a", ended_at="b"),
               journaled.execute_pending(subject, {}), journaled.execute_preview(subject, {}),
               journaled.execute_explained(subject, {}), journaled.approval_step("approval.denied", subject, {}),
               journaled.grant_step("grant.revoked", subject, {})]
    assert len({r.event for r in records}) == len(records)
    for record in records:
        assert (record.request_id, record.ticket, record.reason, record.target, record.command_digest,
                record.client) == ("r1", "CHG-7", "INC-1", "t", "sha256:x", {"ip": "127.0.0.1"})
    assert records[0].outcome == {"status": "refused", "code": "policy_denied"}


@pytest.mark.parametrize("event", ["execute.intent", "grant.activated", "approval", ""])
def test_an_approval_step_refuses_an_event_of_another_family(event):
    subject = journaled.Subject(request_id="r1", principal={})
    with pytest.raises(ValueError):
        journaled.approval_step(event, subject, {})
