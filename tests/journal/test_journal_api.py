"""End to end on the local stack: ``GET /api/journal`` for auditors only, every read journaled,
and the sealing timer run on demand through the devhost's admin API."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from broker.journal import JournalStorage, Verifier
from broker.settings import Settings
from devhost.identities import IDENTITIES
from devhost.stack import REPO_ROOT, DevStack, free_port

pytestmark = pytest.mark.e2e
SQL = "SELECT id, email FROM customers ORDER BY id LIMIT 2"


def _get(api, caller: str | None, **params: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {api.token(caller)}"} if caller else {}
    return api.http.get("/api/journal", params=params, headers=headers)


@pytest.fixture(scope="module")
def executed(api) -> dict:
    r = api.execute({"target": "demo-postgres", "sql": SQL, "reason": "INC-7"})
    assert r.status_code == 200, r.text
    return r.json()


def test_callers_without_the_auditor_role_are_refused(api, executed):
    assert _get(api, None).status_code == 401
    for identity in ("devin", "approver", "operator"):
        r = _get(api, identity, request=executed["request_id"])
        assert r.status_code == 403
        assert r.headers["content-type"].startswith("application/problem+json")
        body = r.json()
        assert body["code"] == "not_auditor" and "Broker.Auditor" in body["detail"] and body["remedy"]


def test_auditors_read_a_request_with_its_masked_response(api, executed):
    r = _get(api, "auditor", request=executed["request_id"])
    assert r.status_code == 200, r.text
    records = r.json()["records"]
    assert [x["event"] for x in records] == ["execute.intent", "execute.outcome"]
    intent, outcome = records
    assert outcome["record_id"] == executed["record_id"] and outcome["outcome"]["intent"] == intent["record_id"]
    assert intent["principal"]["object_id"] == IDENTITIES["devin"].object_id and intent["reason"] == "INC-7"
    assert intent["command"]["sql"] == SQL and intent["decision"]["effect"] == "allow"
    assert intent["client"]["ip"] == "127.0.0.1"
    assert all(row[1].startswith("[email:") for row in outcome["response"]["rows"])
    assert outcome["journal"]["prev"] and outcome["journal"]["hash"]


def test_auditors_replay_an_identity_as_text(api, executed):
    r = _get(api, "auditor", identity=IDENTITIES["devin"].object_id, since="1h", format="replay")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert f"demo-postgres=> {SQL}" in r.text and "[email:" in r.text


def test_bad_queries_are_refused_precisely(api):
    for params in ({"since": "last tuesday"}, {"colour": "red"}, {"limit": "0"}, {"format": "xml"},
                   {"since": "1h", "until": "2h"}):
        r = _get(api, "auditor", **params)
        assert r.status_code == 400 and r.json()["code"] == "invalid_query", (params, r.text)


def test_every_journal_read_is_itself_journaled(api, executed):
    _get(api, "auditor", request=executed["request_id"])
    reads = _get(api, "auditor", event="journal.read", since="1h").json()["records"]
    mine = [x for x in reads if x["command"]["query"].get("request_id") == executed["request_id"]]
    assert mine and mine[-1]["principal"]["object_id"] == IDENTITIES["auditor"].object_id
    assert mine[-1]["outcome"] == {"status": "ok", "records": 2}


@pytest.fixture(scope="module")
def admin_devhost(stack: DevStack) -> Iterator[tuple[str, str]]:
    """A second devhost on the stack, with the admin API on and schedules off."""
    key, port = "journal-admin-key", free_port()
    log = open(stack.state_dir / "journal-admin-devhost.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "devhost", "serve", "--port", str(port), "--no-timers"],
                            cwd=REPO_ROOT, env={**os.environ, **stack.env, "DEVHOST_ADMIN_KEY": key,
                                                  # its own task hub: one devhost per hub (the app has
                                                  # orchestrations since the approvals work)
                                                  "BROKER_TASK_HUB": f"admin{port}"},
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=5)
                break
            except httpx.HTTPError:
                assert proc.poll() is None and time.monotonic() < deadline, "the admin devhost did not start"
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}", key
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


def test_the_seal_timer_runs_on_demand_and_the_journal_verifies(stack, executed, admin_devhost):
    url, key = admin_devhost
    storage = JournalStorage.from_settings(Settings(storage_connection_string=stack.azurite.connection_string))
    try:
        before = set(storage.blob_names("seals/"))
        assert httpx.post(f"{url}/admin/functions/journal_seal", json={"input": ""}, timeout=10).status_code == 401
        r = httpx.post(f"{url}/admin/functions/journal_seal", json={"input": ""},
                       headers={"x-functions-key": key}, timeout=10)
        assert r.status_code == 202
        deadline = time.monotonic() + 30
        while not set(storage.blob_names("seals/")) - before:
            assert time.monotonic() < deadline, "no seal was written"
            time.sleep(0.2)
        report = Verifier(storage).verify()
        assert report.intact, report.render()
        assert report.seals >= 1 and report.records >= 2
    finally:
        storage.close()
