"""Approvals on two storages: the in-memory ports (``tests/memory.py``, the fast domain layer) and
real Azurite (one per package, fresh tables per test). ``parts`` runs a test on both; ``azure_parts``
only on Azurite, for what is the adapter's own (chunked rows, blobs)."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.data.tables import TableClient
from azure.storage.blob import ContainerClient

from broker.approvals import ApprovalRequest, ApprovalService, ApprovalTokens, ApproverDirectory, RequestStore
from broker.approvals.decisions import DecisionDesk
from broker.approvals.directory import Approver
from broker.approvals.ports import JournalSink, RequestRecords
from broker.execute import CallContext
from broker.grants import GrantRecords, GrantStore, GrantView
from broker.journal import JournalReader, JournalStorage, JournalWriter
from broker.journal.events import Subject
from broker.notify.email import SilentNotifier
from broker.secrets import SecretValue
from devhost.azurite import Azurite
from devhost.stack import REPO_ROOT, free_port
from tests.memory import MemoryGrantStore, MemoryJournal, MemoryRequestStore

TENANT = "8f0d5c1e-0000-4000-8000-000000000de0"
REQUESTER = f"{TENANT}/11111111-1111-4111-8111-111111111111"
AGENT_APP_ID = "a9e00000-0000-4000-8000-00000000a9e0"
ADA = Approver(tenant_id=TENANT, object_id="22222222-2222-4222-8222-222222222222", name="Ada Approver",
               email="ada@dev.example", groups=("dba-approvers",))
BO = Approver(tenant_id=TENANT, object_id="33333333-3333-4333-8333-333333333333", name="Bo Approver",
              email="bo@dev.example", groups=("dba-approvers",))
CY = Approver(tenant_id=TENANT, object_id="44444444-4444-4444-8444-444444444444", name="Cy Other",
              email="cy@dev.example", groups=("other-team",))
CTX = CallContext(client_ip="127.0.0.1", user_agent="pytest")


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    server = Azurite(REPO_ROOT, tmp_path_factory.mktemp("azurite"), free_port(), free_port(), free_port()).start()
    yield server
    server.stop()


class StaticKey:
    """A signing key held in memory (the Key Vault path is tested in the end-to-end suite)."""

    def __init__(self, value: str | None = None, version: str = "v1") -> None:
        self.secret = SecretValue(value or secrets.token_urlsafe(32), version)

    def __call__(self) -> SecretValue:
        return self.secret


@dataclass
class Parts:
    store: RequestRecords
    tokens: ApprovalTokens
    directory: ApproverDirectory
    journal: JournalSink
    reader: JournalReader | MemoryJournal
    service: ApprovalService
    desk: DecisionDesk
    conn: str
    suffix: str
    grant_store: GrantRecords
    """Where grants live; the service shows approved grant requests through its ``GrantView``."""

    def events(self, request_id: str) -> list[tuple[str, str, str]]:
        return sorted((s.record.event, s.record.outcome.get("status", ""), s.record.outcome.get("code", ""))
                      for s in self.reader.by_request(request_id))

    def refusals(self, request_id: str) -> list[str]:
        return [s.record.outcome["code"] for s in self.reader.by_request(request_id)
                if s.record.event == "approval.refused"]


def _parts(store: Any, journal: Any, reader: Any, grant_store: Any, conn: str = "", suffix: str = "") -> Parts:
    tokens = ApprovalTokens(StaticKey())
    directory = ApproverDirectory((ADA, BO, CY))
    service = ApprovalService(store=store, directory=directory, tokens=tokens, journal=journal,
                              notifier=SilentNotifier(), public_base_url="http://127.0.0.1:7071",
                              after_approval={"grant": GrantView(grant_store)})
    desk = DecisionDesk(store=store, directory=directory, tokens=tokens, journal=journal)
    return Parts(store, tokens, directory, journal, reader, service, desk, conn, suffix, grant_store)


@pytest.fixture(params=["memory", "azurite"])
def parts(request: pytest.FixtureRequest) -> Iterator[Parts]:
    """The domain on the in-memory ports, then on Azurite."""
    if request.param == "memory":
        journal = MemoryJournal()
        yield _parts(MemoryRequestStore(), journal, journal, MemoryGrantStore())
        return
    yield from _azure_parts(request.getfixturevalue("azurite"))


@pytest.fixture
def azure_parts(azurite: Azurite) -> Iterator[Parts]:
    yield from _azure_parts(azurite)


def _azure_parts(azurite: Azurite) -> Iterator[Parts]:
    conn = azurite.connection_string
    suffix = uuid.uuid4().hex[:8]
    store = RequestStore(TableClient.from_connection_string(conn, f"approvals{suffix}"),
                         ContainerClient.from_connection_string(conn, f"results{suffix}"))
    storage = JournalStorage(TableClient.from_connection_string(conn, f"journal{suffix}"),
                             ContainerClient.from_connection_string(conn, f"journal{suffix}"))
    journal = JournalWriter(storage)
    grant_store = GrantStore(TableClient.from_connection_string(conn, f"grants{suffix}"))
    yield _parts(store, journal, JournalReader(storage), grant_store, conn, suffix)
    journal.close()
    grant_store.close()


def held_request(parts: Parts, *, quorum: int = 1, sql: str = "DELETE FROM customers WHERE id = 3",
                 timeout: int = 900, groups: tuple[str, ...] = ("dba-approvers",),
                 require_sign_in: bool = False) -> ApprovalRequest:
    from broker.targets import Command

    command = Command("sql", sql=sql)
    request = ApprovalRequest(
        request_id=str(uuid.uuid4()), kind="command", status="pending",
        requester={"tenant_id": TENANT, "object_id": REQUESTER.split("/")[1], "display_name": "Devin (dev agent)",
                   "kind": "app", "roles": ["Broker.Caller"], "groups": ["agents"], "app_id": AGENT_APP_ID},
        target="demo-postgres", command_digest=command.digest,
        requirement={"groups": list(groups), "roles": ["Broker.Approver"], "quorum": quorum,
                     "timeout_seconds": timeout, "require_sign_in": require_sign_in},
        expires_at=datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=timeout), command=command.canonical(),
        classification={"risk": "write", "reason": "DELETE changes rows", "statement": "DELETE"},
        decision={"effect": "approve", "rule_id": "dba-approve-demo-writes"}, reason="INC-42 remove test customer")
    parts.service.open(request, Subject(request_id=request.request_id, principal=request.requester,
                                        target=request.target))
    return request


def link(parts: Parts, request: ApprovalRequest, approver: Approver = ADA, *, digest: str | None = None,
         expires_at: datetime | None = None, request_id: str | None = None) -> str:
    return parts.tokens.issue(request_id or request.request_id, approver.key, approver.name,
                              digest or request.command_digest, expires_at or request.expires_at)


def form_for(parts: Parts, request: ApprovalRequest, token: str, verdict: str = "approve") -> tuple[dict, str]:
    """What a browser posts after opening the page: the form fields and the nonce cookie."""
    view = parts.desk.view(request.request_id, token, CTX)
    return {"t": token, "nonce": view.nonce, "verdict": verdict}, view.nonce


def write_yaml(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
