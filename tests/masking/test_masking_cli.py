"""``python -m broker mask``: JSON lines in, masked JSON lines out, same keys and order."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from broker.cli import main

ROWS = [
    {"id": 1, "email": "jane@example.com", "note": "card 4111 1111 1111 1111", "z": None},
    {"note": "nothing here", "id": 2},
    {"id": 3, "payload": {"password": "x", "n": 1}, "log": "token=abcdef123456 at 2024-03-15"},
]


def _run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], stdin: str,
         *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(["mask", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_rows_come_back_masked_with_the_same_keys_in_the_same_order(monkeypatch, capsys, tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_bytes(b"cli-test-key-0123456789\n")
    stdin = "".join(json.dumps(r) + "\n" for r in ROWS) + "\n"
    code, out, err = _run(monkeypatch, capsys, stdin, "--key-file", str(key), "--stats")
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert [list(r) for r in rows] == [list(r) for r in ROWS]
    assert rows[0]["email"].startswith("[email:") and rows[0]["note"].startswith("card [card:")
    assert rows[0]["z"] is None and rows[1] == ROWS[1]
    assert rows[2]["payload"]["password"].startswith("[password:") and rows[2]["payload"]["n"] == 1
    assert rows[2]["log"].startswith("token=[secret:") and rows[2]["log"].endswith(" at 2024-03-15")
    assert "masked 4 values" in err and "email" in err
    again = _run(monkeypatch, capsys, stdin, "--key-file", str(key))[1]
    assert again == out  # the same key gives the same placeholders


def test_rules_file_adds_columns_fields_and_policy(monkeypatch, capsys, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("columns: [note]\nfields: ['payload.*', {path: 'meta.id', type: tenant}]\n"
                     "keep_card_last_four: true\n")
    stdin = json.dumps({"note": "hi", "c": "4111111111111111", "payload": {"a": 1}, "meta": {"id": "t1"}}) + "\n"
    code, out, _ = _run(monkeypatch, capsys, stdin, "--rules", str(rules))
    row = json.loads(out)
    assert code == 0 and row["note"].startswith("[column:") and row["c"].endswith(":1111]")
    assert row["payload"]["a"].startswith("[secret:") and row["meta"]["id"].startswith("[tenant:")


@pytest.mark.parametrize("content", ["columns: 3\n", "unknown_key: true\n", "column_patterns: ['(']\n"])
def test_a_bad_rules_file_is_refused(monkeypatch, capsys, tmp_path: Path, content: str) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(content)
    code, out, err = _run(monkeypatch, capsys, "{}\n", "--rules", str(rules))
    assert code == 2 and out == "" and err.startswith("error: rules ")


@pytest.mark.parametrize("bad", ["not json hunter2", "[1, 2]"])
def test_a_bad_line_stops_after_the_rows_before_it_and_is_never_echoed(monkeypatch, capsys, bad: str) -> None:
    stdin = json.dumps({"a": "ok"}) + "\n" + bad + "\n" + json.dumps({"a": "never"}) + "\n"
    code, out, err = _run(monkeypatch, capsys, stdin)
    assert code == 2
    assert out == json.dumps({"a": "ok"}) + "\n"
    assert "line 2" in err and bad not in err and "hunter2" not in out + err


def test_the_command_runs_as_a_process() -> None:
    stdin = json.dumps({"who": "mail bob@example.com"}) + "\n"
    done = subprocess.run([sys.executable, "-m", "broker", "mask", "--stats"], input=stdin, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["who"].startswith("mail [email:") and "email" in done.stderr
