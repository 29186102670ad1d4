"""Discovery as an operator runs it on the dev stack: ``python -m broker data classify`` in its own
process (the stack's Key Vault, managed identity, Azurite and PostgreSQL), ``data show`` for
review, then the agent's statements through ``POST /api/execute`` on the running devhost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from broker.lineage.guard import REFRESH_SECONDS
from tests.e2e.test_cli import broker_cli_in_process

REPO = Path(__file__).resolve().parents[2]
EMAIL = "margaret.hamilton@example.com"


def data_cli(stack, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROKER_")}
    env["BROKER_DEV_STATE_DIR"] = str(stack.state_dir)
    return subprocess.run([sys.executable, "-m", "broker", "data", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env=env)


def data_in_process(stack, *args: str) -> subprocess.CompletedProcess:
    """``data_cli`` through ``broker.cli.main`` in this process, with the same environment."""
    return broker_cli_in_process("data", *args, env={"BROKER_DEV_STATE_DIR": str(stack.state_dir)},
                                 drop=("BROKER_",))


@pytest.fixture(scope="module")
def tickets(stack) -> str:
    with stack.postgres.admin("demo") as db:
        db.execute("DROP TABLE IF EXISTS support_threads")
        db.execute("CREATE TABLE support_threads (id int PRIMARY KEY, topic text, message text)")
        db.execute("INSERT INTO support_threads VALUES (1, 'login', %s), (2, 'billing', 'no address given')",
                   (f"reach me at {EMAIL} thanks",))
        db.execute("GRANT SELECT ON support_threads TO broker_agent")
    return "support_threads"


def test_classify_then_show_then_lineage_masks_the_discovered_column(stack, api, tickets) -> None:
    started = time.monotonic()  # the devhost has not been called since: its last schema re-read was before
    done = data_cli(stack, "classify", "demo-postgres", "--sample", "20", "--json")
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    assert run["by"]["kind"] == "operator" and run["sample_rows"] == 20
    found = {f["column"]: f for f in run["found"]}
    assert found["public.support_threads.message"]["types"] == {"email": 1}
    assert (found["public.support_threads.message"]["hits"], found["public.support_threads.message"]["sampled"]) \
        == (1, 2)
    assert "public.support_threads.topic" not in found
    assert EMAIL not in done.stdout + done.stderr

    shown = data_cli(stack, "show", "demo-postgres", "--json")
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    columns = {c["column"]: c for c in report["columns"]}
    assert report["status"] == "verified" and report["run"]["run_id"] == run["run_id"]
    assert (columns["public.support_threads.message"]["kind"],
            columns["public.support_threads.message"]["decided_by"]) == ("free_text", "discovery")
    assert (columns["public.customers.notes"]["kind"], columns["public.customers.notes"]["decided_by"]) \
        == ("free_text", "catalog")
    assert columns["public.customers.email"]["decided_by"] == "name rule"
    text = data_in_process(stack, "show", "demo-postgres")
    assert text.returncode == 0 and "public.support_threads.message" in text.stdout and "discovery" in text.stdout

    # The devhost never saw the table: its first mention re-reads the schema, at most once per
    # REFRESH_SECONDS, counted from a re-read that happened before ``started``.
    time.sleep(max(0.0, REFRESH_SECONDS - (time.monotonic() - started)))
    for sql in ["SELECT id, reverse(message) FROM support_threads ORDER BY id",
                "SELECT id FROM support_threads WHERE message LIKE 'reach%'"]:
        r = api.execute({"target": "demo-postgres", "sql": sql, "reason": "test"})
        assert r.status_code == 202, r.text  # derived from, or shaped by, the discovered column: a DBA approves
        assert r.json()["risk"] == "sensitive-predicate"
        assert EMAIL not in r.text and EMAIL[::-1] not in r.text
    r = api.execute({"target": "demo-postgres", "sql": "SELECT message FROM support_threads ORDER BY id"})
    assert r.status_code == 200 and EMAIL not in r.text  # selected as it is: masked by content
    assert "[email:" in r.json()["rows"][0][0]


def test_classify_refuses_what_it_cannot_do(stack) -> None:
    done = data_cli(stack, "classify", "no-such-target")
    assert done.returncode == 2 and "unknown_target" in done.stderr
    done = data_in_process(stack, "classify", "demo-postgres", "--sample", "0")
    assert done.returncode == 2 and "invalid_request" in done.stderr
    done = data_in_process(stack, "classify", "demo-k8s")
    assert done.returncode == 2 and "unsupported_command" in done.stderr
