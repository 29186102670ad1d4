"""The execute use case in milliseconds: ``ExecuteService.submit`` with a test engine (in tests/,
never in the product), the real guard, policy, lineage and masker, and the in-memory ports.

What it proves is the order the broker promises: the intent is durable before the engine sees the
command, the masked outcome before the answer; a held command is Pending with its workflow started
once; a start that fails leaves nothing pending; a refusal is journaled and runs nothing."""

from __future__ import annotations

from typing import Any

import pytest

from broker.approvals import ApprovalService, ApprovalTokens, ApproverDirectory
from broker.catalog import Catalog, Target
from broker.execute import CallContext, Done, ExecuteBody, ExecuteService, MaskerSource, Pending
from broker.guard import Classification
from broker.guard.sql import classify_sql
from broker.identity import Principal
from broker.lineage.schema import Schema
from broker.notify.email import SilentNotifier
from broker.policy import Policy
from broker.problems import BrokerError
from broker.secrets import CredentialResolver, SecretValue
from broker.targets import Column, Command, ExecutionLimits, ResultSet
from tests.approvals.conftest import ADA, BO, TENANT
from tests.memory import MemoryJournal, MemoryRequestStore

POLICY = Policy.from_text("""
version: 1
rules:
  - id: agents-read
    when: {roles: [Broker.Caller], risk: [read]}
    effect: allow
  - id: agents-write-with-a-dba
    when: {roles: [Broker.Caller], risk: [write]}
    effect: approve
    approval: {groups: [dba-approvers], quorum: 1, timeout_seconds: 600}
""")
CATALOG = Catalog.model_validate({"targets": {
    "db": {"engine": "test", "read_only": False, "credential": {"source": "key-vault", "secret": "db-secret"}}}})
AGENT = Principal(tenant_id=TENANT, object_id="11111111-1111-4111-8111-111111111111", kind="app",
                  roles=frozenset({"Broker.Caller"}), display_name="agent")
CTX = CallContext(client_ip="127.0.0.1", user_agent="pytest")
CARD = "4111 1111 1111 1111"


class Vault:
    def get(self, name: str) -> SecretValue:
        return SecretValue(f"value-of-{name}-0123456789abcdef", "v1")

    def invalidate(self, name: str) -> None:
        return None


class OneTableEngine:
    """An SQL engine over one table, recording what the journal held when each command ran."""

    language = "sql"
    dialect = "postgres"

    def __init__(self, journal: MemoryJournal) -> None:
        self.journal = journal
        self.ran: list[tuple[str, list[str]]] = []

    def classify(self, command: Command) -> Classification:
        return classify_sql(command.sql, self.dialect)

    def resolve(self, target: Target, command: Command, classification: Classification, secret: Any) -> Classification:
        return classification

    def read_schema(self, target: Target, secret: SecretValue) -> Schema:
        return Schema(tables={("public", "customers"): ("id", "email", "notes")})

    def execute(self, target: Target, command: Command, secret: SecretValue, limits: ExecutionLimits,
                *, read_only: bool) -> ResultSet:
        self.ran.append((command.sql, [s.record.event for s in self.journal.all()]))
        return ResultSet(columns=[Column("id", "int4"), Column("email", "text"), Column("notes", "text")],
                         rows=[[1, "ada@example.com", f"card {CARD}"]], status="SELECT 1")

    def check(self, target: Target, secret: SecretValue) -> None:
        return None

    def unavailable_reason(self) -> str | None:
        return None

    def close(self) -> None:
        return None


class Starter:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.started: list[str] = []

    def start(self, orchestrator: str, request_id: str, payload: dict[str, Any]) -> None:
        if self.fail:
            raise ConnectionError("the task hub is down")
        self.started.append(request_id)


@pytest.fixture
def world():
    journal = MemoryJournal()
    store = MemoryRequestStore()
    desk = ApprovalService(store=store, directory=ApproverDirectory((ADA, BO)),
                           tokens=ApprovalTokens(lambda: SecretValue("k" * 32, "v1")), journal=journal,
                           notifier=SilentNotifier(), public_base_url="http://127.0.0.1:7071")
    engine = OneTableEngine(journal)
    credentials = CredentialResolver(Vault(), identity=None)  # type: ignore[arg-type]
    service = ExecuteService(catalog=CATALOG, policy=POLICY, engines={"test": engine}, credentials=credentials,
                             masker=MaskerSource(credentials, "masking-key"), journal=journal, approvals=desk)
    return service, engine, journal, store


def body(sql: str, **extra: Any) -> ExecuteBody:
    return ExecuteBody.parse({"target": "db", "sql": sql, "reason": "INC-1", "ticket": "CHG-9", **extra})


def test_a_read_is_done_masked_with_its_intent_durable_before_it_ran(world):
    service, engine, journal, _ = world
    outcome = service.submit(AGENT, body("SELECT id, email, notes FROM customers"), CTX, workflow=Starter())
    assert isinstance(outcome, Done)
    [(sql, journaled_before)] = engine.ran
    assert sql == "SELECT id, email, notes FROM customers"
    assert journaled_before == ["execute.intent"]  # the intent, and nothing else yet
    answer = outcome.result.to_dict()
    assert "ada@example.com" not in str(answer) and CARD not in str(answer)
    records = journal.by_request(outcome.result.request_id)
    assert [s.record.event for s in records] == ["execute.intent", "execute.outcome"]
    assert records[1].record_id == outcome.result.record_id  # the answer names its durable outcome
    assert "ada@example.com" not in str(records[1].record.response)
    assert {s.record.ticket for s in records} == {"CHG-9"}


def test_a_write_is_pending_held_once_and_its_workflow_started_once(world):
    service, engine, journal, store = world
    starter = Starter()
    first = service.submit(AGENT, body("UPDATE customers SET notes = 'x' WHERE id = 1"), CTX, workflow=starter)
    again = service.submit(AGENT, body("UPDATE customers SET notes = 'x' WHERE id = 1"), CTX, workflow=starter)
    assert isinstance(first, Pending) and isinstance(again, Pending)
    assert again.held.request_id == first.held.request_id and again.held.resubmitted
    assert starter.started == [first.held.request_id]
    assert engine.ran == [] and store.get(first.held.request_id).status == "pending"
    assert [s.record.event for s in journal.by_request(first.held.request_id)] == ["execute.pending"] * 2


def test_a_workflow_that_cannot_start_fails_the_request_and_nothing_waits(world):
    service, engine, journal, store = world
    with pytest.raises(BrokerError) as caught:
        service.submit(AGENT, body("DELETE FROM customers WHERE id = 1"), CTX, workflow=Starter(fail=True))
    assert (caught.value.status, caught.value.code) == (503, "workflow_unavailable")
    [held] = store.mine(AGENT.key, 10)
    assert held.status == "failed" and engine.ran == []
    assert "approval.failed" in [s.record.event for s in journal.by_request(held.request_id)]


@pytest.mark.parametrize("sql, code", [
    ("DROP TABLE customers", "policy_denied"),
    ("SELECT 1; SELECT 2", "multiple_statements"),
    ("SELEC id FROM customers", "invalid_sql"),
])
def test_a_refusal_is_journaled_and_runs_nothing(world, sql, code):
    service, engine, journal, _ = world
    with pytest.raises(BrokerError) as caught:
        service.submit(AGENT, body(sql), CTX, workflow=Starter())
    assert caught.value.code == code and engine.ran == []
    [denied] = [s.record for s in journal.all() if s.record.event == "execute.denied"]
    assert denied.outcome == {"status": "refused", "code": code} and denied.ticket == "CHG-9"


def test_the_query_tool_refuses_a_change_as_not_a_read(world):
    service, engine, _, _ = world
    with pytest.raises(BrokerError) as caught:
        service.submit(AGENT, body("UPDATE customers SET notes = 'x'"), CTX, workflow=Starter(), reads_only=True)
    assert caught.value.code == "not_a_read" and engine.ran == []


def test_without_an_approval_desk_a_held_command_is_refused_and_journaled(world):
    service, engine, journal, _ = world
    lone = ExecuteService(catalog=CATALOG, policy=POLICY, engines={"test": engine},
                          credentials=CredentialResolver(Vault(), identity=None),  # type: ignore[arg-type]
                          masker=service.masker, journal=journal)
    starter = Starter()
    with pytest.raises(BrokerError) as caught:
        lone.submit(AGENT, body("UPDATE customers SET notes = 'x' WHERE id = 1"), CTX, workflow=starter)
    assert (caught.value.status, caught.value.code) == (403, "approval_required")
    assert engine.ran == [] and starter.started == []
    [denied] = [s.record for s in journal.all() if s.record.event == "execute.denied"]
    assert denied.outcome["code"] == "approval_required"


def test_a_database_enforced_layer_is_journaled_with_each_statement(world):
    """``sensitive.database_masking`` (issue 13, item 7): every SQL decision records the further wall, and
    ``lineage: false`` is accepted only with one."""
    service, engine, journal, _ = world
    walled = Catalog.model_validate({"targets": {"db": {
        "engine": "test", "read_only": False, "credential": {"source": "key-vault", "secret": "db-secret"},
        "sensitive": {"database_masking": {"kind": "postgresql-anonymizer", "role": "broker_masked"}}}}})
    masked = ExecuteService(catalog=walled, policy=POLICY, engines={"test": engine}, credentials=service._credentials,
                            masker=service.masker, journal=journal)
    outcome = masked.submit(AGENT, body("SELECT id, email FROM customers"), CTX, workflow=Starter())
    assert isinstance(outcome, Done) and "ada@example.com" not in str(outcome.result.to_dict())  # lineage still on
    intent = journal.by_request(outcome.result.request_id)[0].record.to_dict()
    assert intent["classification"]["database_masking"] == {"kind": "postgresql-anonymizer",
                                                             "role": "broker_masked"}
    with pytest.raises(ValueError, match=r"needs sensitive\.database_masking"):
        Catalog.model_validate({"targets": {"db": {"engine": "test", "credential": {"source": "key-vault",
                                                   "secret": "s"}, "sensitive": {"lineage": False}}}})
    with pytest.raises(ValueError):
        Catalog.model_validate({"targets": {"db": {"engine": "test", "credential": {"source": "key-vault",
                                                   "secret": "s"}, "sensitive": {"database_masking": {"kind": "x"}}}}})
