"""``python -m broker classify``: JSON lines in and out (malformed lines fail closed), and --sql."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

from broker.cli.classify import classify_lines, render
from broker.guard.sql import classify_sql

ROOT = Path(__file__).resolve().parents[2]


def test_json_lines_each_get_an_answer_in_order() -> None:
    lines = io.StringIO("\n".join([
        json.dumps({"dialect": "postgres", "sql": "SELECT 1", "id": "a"}),
        json.dumps({"dialect": "mysql", "sql": "SELECT * FROM t INTO OUTFILE '/tmp/x'"}),
        "",
        json.dumps({"dialect": "mssql", "sql": "EXEC xp_cmdshell 'dir'"}),
        json.dumps({"sql": "DELETE FROM t"}),
    ]) + "\n")
    out = io.StringIO()
    assert classify_lines(lines, out, "postgres") == 0
    answers = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(a["read_only"], a["risk"]) for a in answers] == [
        (True, "read"), (False, "unknown"), (False, "exec"), (False, "destructive")]
    assert answers[0]["id"] == "a" and answers[2]["dialect"] == "tsql"
    assert all(a["reason"] for a in answers)


def test_malformed_lines_fail_closed_and_set_the_exit_status() -> None:
    lines = io.StringIO('not json\n{"sql": 42}\n["SELECT 1"]\n{"sql": "SELECT 1", "dialect": 7}\n'
                        '{"sql": "SELECT 1", "dialect": "oracle"}\n')
    out = io.StringIO()
    assert classify_lines(lines, out, "postgres") == 1
    answers = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(answers) == 5
    assert all(a["risk"] == "unknown" and a["read_only"] is False for a in answers)
    assert [a.get("line") for a in answers[:4]] == [1, 2, 3, 4]
    assert "unknown SQL dialect" in answers[4]["reason"]


def test_the_real_command_reads_stdin_and_takes_sql() -> None:
    done = subprocess.run([sys.executable, "-m", "broker", "classify"], cwd=ROOT, capture_output=True, text=True,
                          input='{"dialect": "tsql", "sql": "SELECT 1 DELETE FROM t"}\n', timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["risk"] == "unknown" and answer["read_only"] is False
    done = subprocess.run([sys.executable, "-m", "broker", "classify", "--sql", "SELECT 1", "--dialect", "mysql",
                           "--json"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert json.loads(done.stdout)["read_only"] is True


def test_human_rendering_says_read_only_or_not() -> None:
    text = render(classify_sql("WITH d AS (DELETE FROM t RETURNING *) SELECT 1 FROM t FOR UPDATE", "postgres")
                  .to_dict())
    assert "risk       destructive  (NOT read-only)" in text
    assert "also     write: FOR UPDATE" in text
    assert "(read-only)" in render(classify_sql("SELECT 1", "postgres").to_dict())
