"""A dev stack of its own for the approval end-to-end tests: the dev policy plus a two-person
rule, the Durable engine on a manual clock (tests move time), and a driver that acts like the
agent, the approvers' mailboxes and their browsers."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from broker.journal import JournalReader, JournalStorage
from broker.settings import Settings
from devhost.identities import IDENTITIES
from devhost.smtp import read_message
from devhost.stack import REPO_ROOT, DevStack, Ports

TWO_PERSON_GROUP = "two-person-rule"
BOUNDED_GROUP = "bounded-writes"  # callers whose approved writes may change at most 2 rows
SIZED_GROUP = "sized-writes"  # callers whose writes need more approvers, or none at all, by their measured rows
LINK = re.compile(r"http://127\.0\.0\.1:\d+/api/approvals/[0-9a-f-]{36}\?t=[\w.-]+")


def touch(cid: int) -> str:
    """A write that leaves a countable trace: run twice, it would mark the row twice."""
    return f"UPDATE customers SET notes = 'e2e-run;' || coalesce(notes, '') WHERE id = {cid}"


def _policy(path: Path) -> Path:
    policy = yaml.safe_load((REPO_ROOT / "config/dev/policy.yaml").read_text())
    policy["rules"].insert(0, {
        "id": "two-person-writes", "description": "callers under the two-person rule need two DBAs",
        "when": {"groups": [TWO_PERSON_GROUP], "targets": ["demo-postgres"], "risk": ["write"]},
        "effect": "approve", "approval": {"groups": ["dba-approvers"], "quorum": 2, "timeout_seconds": 900}})
    policy["rules"].insert(0, {
        "id": "hidden-text-needs-a-dba", "description": "commands with hidden characters go to a DBA, never run freely",
        "when": {"targets": ["demo-postgres"], "risk": ["hidden-text"]},
        "effect": "approve", "approval": {"groups": ["dba-approvers"], "quorum": 1, "timeout_seconds": 900}})
    policy["rules"].insert(0, {
        "id": "bounded-writes", "description": "these callers' writes may change at most two rows",
        "when": {"groups": [BOUNDED_GROUP], "targets": ["demo-postgres"], "risk": ["write"]},
        "effect": "approve", "approval": {"groups": ["dba-approvers"], "quorum": 1, "timeout_seconds": 900},
        "limits": {"max_rows_changed": 2}})
    policy["rules"][:0] = [  # the rows rules first: among equal effects the first match wins
        {"id": "sized-writes-over-2-need-two", "description": "a change of more than two rows needs two DBAs",
         "when": {"groups": [SIZED_GROUP], "targets": ["demo-postgres"], "risk": ["write"], "rows_changed_over": 2},
         "effect": "approve", "approval": {"groups": ["dba-approvers"], "quorum": 2, "timeout_seconds": 900}},
        {"id": "sized-writes-over-3-denied", "description": "more than three rows at once is never done this way",
         "when": {"groups": [SIZED_GROUP], "targets": ["demo-postgres"], "risk": ["write"], "rows_changed_over": 3},
         "effect": "deny", "remedy": "Change at most three rows per request."},
        {"id": "sized-writes", "description": "these callers' writes need a DBA",
         "when": {"groups": [SIZED_GROUP], "targets": ["demo-postgres"], "risk": ["write"]},
         "effect": "approve", "approval": {"groups": ["dba-approvers"], "quorum": 1, "timeout_seconds": 900}},
    ]
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    return path


@pytest.fixture(scope="package")
def astack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    state = tmp_path_factory.mktemp("approvals-stack")
    stack = DevStack(state, Ports.free(), policy_path=_policy(state / "policy.yaml"), durable_clock="manual")
    stack.start()
    yield stack
    stack.stop()


class Flow:
    """Drives the stack the way the agent, the approvers and their browsers do."""

    def __init__(self, stack: DevStack) -> None:
        self.stack = stack
        self.http = httpx.Client(base_url=stack.base_url, timeout=30)
        settings = Settings(storage_connection_string=stack.azurite.connection_string)  # type: ignore[union-attr]
        self.reader = JournalReader(JournalStorage.from_settings(settings))

    # --- the agent ---
    def token(self, identity: str = "devin", groups: tuple[str, ...] | None = None, **claims: Any) -> str:
        issuer = self.stack.issuer
        assert issuer is not None
        body = issuer.claims_for(IDENTITIES[identity])
        if groups is not None:
            body["groups"] = list(groups)
        body.update(claims)
        return issuer.sign(body)

    def call(self, method: str, path: str, identity: str | None = "devin", token: str | None = None,
             **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        token = token or (self.token(identity) if identity else None)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return self.http.request(method, path, headers=headers, **kwargs)

    def execute(self, sql: str, **kwargs: Any) -> httpx.Response:
        return self.call("POST", "/api/execute", json={"target": "demo-postgres", "sql": sql,
                                                       "reason": "e2e: tidy a test customer"}, **kwargs)

    def pending(self, sql: str, **kwargs: Any) -> dict[str, Any]:
        r = self.execute(sql, **kwargs)
        assert r.status_code == 202, r.text
        return r.json()

    def status(self, request_id: str, identity: str = "devin", **kwargs: Any) -> dict[str, Any]:
        r = self.call("GET", f"/api/requests/{request_id}", identity, **kwargs)
        assert r.status_code == 200, r.text
        return r.json()

    def wait_status(self, request_id: str, *statuses: str, timeout: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            body = self.status(request_id)
            if body["status"] in statuses:
                return body
            if time.monotonic() > deadline:
                raise AssertionError(f"request {request_id} stayed {body['status']}, wanted {statuses}: {body}")
            time.sleep(0.05)

    # --- the approvers' mailboxes ---
    def links(self, request_id: str, timeout: float = 15.0) -> dict[str, str]:
        """Each approver's link for this request, from the .eml files the mail sink kept."""
        deadline = time.monotonic() + timeout
        while True:
            found: dict[str, str] = {}
            for path in sorted((self.stack.state_dir / "mail").glob("*.eml")):
                message = read_message(path)
                text = message.get_body(("plain",)).get_content()
                for url in LINK.findall(text):
                    if f"/api/approvals/{request_id}?" in url:
                        found[str(message["To"].addresses[0].addr_spec)] = url
            if len(found) >= 2 or (found and time.monotonic() > deadline):
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"no approval mail for {request_id}")
            time.sleep(0.05)

    # --- the approvers' browsers ---
    def open(self, url: str) -> httpx.Response:
        return self.http.get(url)

    def decide(self, url: str, verdict: str = "approve") -> httpx.Response:
        """Open the page (GET), then press the button (POST with the page's cookie)."""
        page = self.http.get(url)
        assert page.status_code == 200, page.text
        fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page.text))
        assert fields, page.text
        cookie = page.headers["set-cookie"].split(";")[0]
        return self.http.post(url.split("?")[0], data={**fields, "verdict": verdict},
                              headers={"Cookie": cookie, "Origin": self.stack.base_url})

    # --- time and the engine ---
    def advance_to(self, moment: datetime) -> None:
        r = self.stack.durable_admin("POST", "clock/advance", json={"to": moment.astimezone(UTC).isoformat()})
        assert r.status_code == 200, r.text
        self.idle()

    def idle(self) -> None:
        self.stack.wait_durable_idle(timeout=20)

    # --- evidence ---
    def events(self, request_id: str) -> list[str]:
        return sorted(s.record.event for s in self.reader.by_request(request_id))

    def refusals(self, request_id: str) -> list[str]:
        return sorted(s.record.outcome.get("code", "") for s in self.reader.by_request(request_id)
                      if s.record.event == "approval.refused")

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        assert self.stack.postgres is not None
        with self.stack.postgres.admin("demo") as db:
            return db.execute(sql).fetchall()

    def runs(self, cid: int) -> int:
        """How many times an approved ``touch(cid)`` ran."""
        (notes,) = self.rows(f"SELECT coalesce(notes, '') FROM customers WHERE id = {cid}")[0]
        return notes.count("e2e-run;")

    def dump(self, request_id: str) -> str:
        return json.dumps([r.to_dict() for r in self.reader.by_request(request_id)], indent=1, default=str)


@pytest.fixture(scope="package")
def flow(astack: DevStack) -> Iterator[Flow]:
    driver = Flow(astack)
    yield driver
    driver.http.close()
