"""The CLI as people use it: subprocesses, environment, exit codes, printed output."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from unittest import mock

import httpx
import pytest

from devhost.postgres import _alive

REPO = Path(__file__).resolve().parents[2]


def broker_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "broker", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def broker_cli_in_process(*args: str, env: dict[str, str] | None = None,
                          drop: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """The same command through ``broker.cli.main`` in this process, for the cases beyond the one
    real subprocess each command keeps (an interpreter start plus the broker's imports costs 1-5 s
    on 2 cores). ``env`` is applied and variables starting with ``drop`` removed for the call only:
    the whole environment, including what the command itself puts there, is restored after."""
    from broker.cli import main

    out, err = io.StringIO(), io.StringIO()
    with mock.patch.dict(os.environ, env or {}), redirect_stdout(out), redirect_stderr(err):
        for name in [k for k in os.environ if drop and k.startswith(drop) and k not in (env or {})]:
            del os.environ[name]
        code = main(list(args))
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="module")
def cli_env(stack) -> dict[str, str]:
    return {"BROKER_URL": stack.base_url, "BROKER_TOKEN": stack.token("devin"),
            "BROKER_STORAGE_CONNECTION_STRING": stack.azurite.connection_string}


def test_help_documents_every_command(capsys):
    """The real process lists every command with its one-line help; each command's own --help
    (in-process: one interpreter start per command cost ~1 s each) exits 0 with its usage."""
    out = broker_cli("--help").stdout
    from broker.cli import COMMANDS, main

    for name in COMMANDS:
        listed = re.search(rf"^    {re.escape(name)}\s+(\S.*)$", out, re.MULTILINE)
        assert listed and len(listed.group(1).split()) > 2, f"{name} has no help line in --help"
        with pytest.raises(SystemExit) as exited:
            main([name, "--help"])
        assert exited.value.code == 0
        assert f"python -m broker {name}" in capsys.readouterr().out


def test_exec_prints_a_masked_table_and_a_summary(cli_env, stack):
    r = broker_cli("exec", "--target", "demo-postgres", "--sql", "SELECT id, email, notes FROM customers "
                   "WHERE id IN (2, 3) ORDER BY id", env=cli_env)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["id", "email", "notes"]
    assert "[email:" in lines[2] and "[email:" in lines[3]
    assert re.search(r"2 row\(s\) · masked .*email 2", r.stdout)
    assert "@" not in r.stdout


def test_exec_json_is_the_broker_response(cli_env):
    r = broker_cli("exec", "--json", "--target", "demo-postgres", "--sql", "SELECT 41 + 1 AS answer", env=cli_env)
    body = json.loads(r.stdout)
    assert body["rows"] == [[42]] and body["columns"] == [{"name": "answer", "type": "int4"}]


def test_exec_prints_the_refusal_code_and_remedy_and_exits_1(cli_env):
    r = broker_cli_in_process("exec", "--target", "nope", "--sql", "SELECT 1", env=cli_env)
    assert r.returncode == 1
    assert "error unknown_target (404)" in r.stderr and "remedy:" in r.stderr


def test_exec_without_a_reachable_broker_says_so(cli_env):
    r = broker_cli_in_process("exec", "--target", "demo-postgres", "--sql", "SELECT 1",
                   env={**cli_env, "BROKER_URL": "http://127.0.0.1:9"})
    assert r.returncode == 1 and "broker_unreachable" in r.stderr


def test_journal_list_and_show_read_back_the_call(cli_env):
    """``journal list`` and ``journal show`` each run once as a real process; the call they read
    back and the unknown id go through the same ``main`` in this process."""
    r = broker_cli_in_process("exec", "--json", "--target", "demo-postgres", "--sql", "SELECT 'journal-cli' AS tag",
                   env=cli_env)
    record_id = json.loads(r.stdout)["record_id"]
    listing = broker_cli("journal", "list", "--last", "10", env=cli_env)
    assert listing.returncode == 0
    line = next(ln for ln in listing.stdout.splitlines() if ln.startswith(record_id))
    assert "execute.outcome" in line and "Devin" in line and "allow" in line and "ok" in line
    shown = json.loads(broker_cli("journal", "show", record_id, env=cli_env).stdout)
    assert shown["command"]["sql"] == "SELECT 'journal-cli' AS tag" and shown["response"]["rows"] == [["journal-cli"]]
    assert broker_cli_in_process("journal", "show", "0" * 22, env=cli_env).returncode == 1


def test_the_dev_command_starts_the_stack_serves_the_readme_example_and_stops_everything(tmp_path):
    state = tmp_path / "dev"
    env = {"BROKER_DEV_STATE_DIR": str(state)}
    proc = subprocess.Popen([sys.executable, "-m", "broker", "dev", "--free-ports", "--state", str(state)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **env})
    try:
        output = ""
        deadline = time.monotonic() + 90
        while "Ctrl-C stops everything" not in output:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, output
            output += line
            assert time.monotonic() < deadline, output
        stack = json.loads((state / "stack.json").read_text())
        assert httpx.get(f"{stack['broker_url']}/api/health").json()["status"] == "ok"
        r = broker_cli("exec", "--target", "demo-postgres", "--sql", "SELECT * FROM customers LIMIT 5", env=env)
        assert r.returncode == 0, r.stderr
        assert "5 row(s)" in r.stdout and "@" not in r.stdout
        assert broker_cli("token", "--dev", "--identity", "auditor", env=env).stdout.count(".") == 2
        pids = [p for p in stack["pids"].values() if p and p != proc.pid]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert proc.returncode == 0
    assert len(pids) == 3  # devhost, postgres, azurite
    for pid in pids:  # nothing the stack started is left running
        assert not _alive(pid), pid
    assert not (state / "stack.json").exists()
