"""The agent's CLI against a pending approval: ``--no-wait --json``, and waiting until done."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from devhost.stack import REPO_ROOT
from tests.approvals.e2e.conftest import touch

pytestmark = pytest.mark.e2e


def cli(flow, *args: str) -> subprocess.Popen[str]:
    (flow.stack.state_dir / "stack.json").write_text(json.dumps(flow.stack.describe()))
    env = {**os.environ, "BROKER_DEV_STATE_DIR": str(flow.stack.state_dir)}
    env.pop("BROKER_URL", None)
    env.pop("BROKER_TOKEN", None)
    return subprocess.Popen([sys.executable, "-m", "broker", *args], cwd=REPO_ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_no_wait_json_prints_the_request_and_its_status_url(flow):
    proc = cli(flow, "exec", "--target", "demo-postgres", "--sql", touch(230),
               "--no-wait", "--json")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    body = json.loads(out)
    assert body["status"] == "pending" and body["status_url"].endswith(f"/api/requests/{body['request_id']}")
    flow.decide(flow.links(body["request_id"])["ada@dev.example"], "deny")


def test_exec_waits_for_the_approval_and_prints_the_result(flow):
    proc = cli(flow, "exec", "--target", "demo-postgres", "--sql", touch(231),
               "--reason", "cli e2e")
    rid = None
    deadline = time.monotonic() + 30
    while rid is None and time.monotonic() < deadline:
        for stored in flow.reader.recent(limit=20):
            record = stored.record
            if record.event == "execute.pending" and record.command.get("sql", "").endswith("WHERE id = 231"):
                rid = record.request_id
        time.sleep(0.1)
    assert rid, "the CLI's request never arrived"
    flow.decide(flow.links(rid)["bo@dev.example"])
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "approval needed (write on demo-postgres)" in out
    assert "approved by Bo Approver (approve); ran once" in out and "1 affected" in out


def test_requests_cancel_and_list_from_the_cli(flow):
    rid = flow.pending(touch(184))["request_id"]
    listed = cli(flow, "requests", "list", "--limit", "3", "--json")
    out, err = listed.communicate(timeout=60)
    assert listed.returncode == 0, err
    assert json.loads(out)["requests"][0]["request_id"] == rid
    proc = cli(flow, "requests", "cancel", rid)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert f"request {rid} cancelled; nothing ran" in out
    flow.idle()
    assert flow.status(rid)["status"] == "cancelled" and "approval.cancelled" in flow.events(rid)
    again = cli(flow, "requests", "cancel", rid, "--json")
    out, err = again.communicate(timeout=60)
    assert again.returncode == 1 and "already_decided" in out + err
    shown = cli(flow, "requests", "show", rid)
    out, err = shown.communicate(timeout=60)
    assert shown.returncode == 6 and "cancelled by Devin" in out, out + err
