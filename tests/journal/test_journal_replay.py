"""Replay reads like a terminal session; export is JSON lines; the CLI's exit codes mean what they say."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from azure.data.tables import UpdateMode
from journal_samples import DEVIN, base, execute, intent

from broker.cli import main
from broker.journal import Event, JournalQuery, JournalReader, JournalRecord, StoredRecord, replay_json, replay_text
from broker.journal.envelope import parse_record_id


def _session(writer, session: str = "sess-42") -> dict[str, str]:
    ids = {}
    ids["read"] = execute(writer, session_id=session)[0]
    denied = JournalRecord(event=Event.EXECUTE_DENIED, outcome={"status": "refused", "code": "policy_denied"},
                           **{**base(session_id=session, sql="DELETE FROM customers"),
                              "classification": {"risk": "write"},
                              "decision": {"effect": "deny", "rule_id": "no-writes", "reason": "agents may not write",
                                           "policy_version": "3fa2c1d0e9b8a7f6"}})
    ids["denied"] = writer.write(denied)
    failing = intent(session_id=session, sql="SELECT * FROM nope")
    ids["failing"] = writer.write(failing)
    writer.write(JournalRecord(event=Event.EXECUTE_OUTCOME, outcome={
        "intent": ids["failing"], "status": "error", "code": "query_failed",
        "detail": 'relation "nope" does not exist', "duration_ms": 1.1},
        **base(request_id=failing.request_id, session_id=session, sql="SELECT * FROM nope")))
    ids["open"] = writer.write(intent(session_id=session, sql="UPDATE orders SET status = 'x'\nWHERE id = 7"))
    execute(writer, session_id="another-session")
    return ids


def test_a_session_replays_like_a_terminal(storage, writer):
    _session(writer)
    records = JournalReader(storage).query(JournalQuery(session="sess-42"))
    text = replay_text(records, "session sess-42")
    blocks = text.strip().split("\n\n")
    assert re.match(r"^# journal replay: session sess-42 · 4 commands · \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}Z \.\. ",
                    blocks[0])
    assert len(blocks) == 5  # the title and four commands; the other session is not there
    read = blocks[1].splitlines()
    assert re.match(r"^\[\d{4}-\d\d-\d\d [\d:.]+Z\] Devin \(dev agent\) @ demo-postgres · read · allow "
                    r"\(rule agents-read, policy 3fa2c1d0\) · reason: INC-123$", read[0])
    assert read[1:] == [
        "demo-postgres=> SELECT id, name, email FROM customers ORDER BY id LIMIT 3",
        " id |      name     |     email",
        "----+---------------+----------------",
        " 1  | [name:1a2b3c] | [email:7f3a9c]",
        " 2  | [name:4d5e6f] | [email:0b1c2d]",
        " 3  | [name:a7b8c9] | [email:e3f4a5]",
        "(3 rows · masked: email 3, name 3 · 4.2 ms)",
    ]
    assert blocks[2].splitlines()[1:] == ["demo-postgres=> DELETE FROM customers",
                                          "✗ refused: policy_denied — agents may not write"]
    assert blocks[3].splitlines()[1:] == ["demo-postgres=> SELECT * FROM nope",
                                          'ERROR (query_failed): relation "nope" does not exist']
    assert blocks[4].splitlines()[1:] == [
        "demo-postgres=> UPDATE orders SET status = 'x'", "demo-postgres-> WHERE id = 7",
        "⚠ no outcome recorded: the broker stopped, or could not journal the outcome; the command may or may not "
        "have run"]


def test_replay_json_pairs_intents_with_outcomes(storage, writer):
    ids = _session(writer)
    steps = replay_json(JournalReader(storage).query(JournalQuery(session="sess-42")))
    assert [(s["record_id"], s["event"], s["open"]) for s in steps] == [
        (ids["read"], "execute.intent", False), (ids["denied"], "execute.denied", False),
        (ids["failing"], "execute.intent", False), (ids["open"], "execute.intent", True)]
    assert steps[0]["response"]["rows"][0] == [1, "[name:1a2b3c]", "[email:7f3a9c]"]
    assert steps[0]["outcome"]["masked"] == {"email": 3, "name": 3}
    assert steps[2]["outcome"]["code"] == "query_failed" and steps[3]["outcome"] is None


@pytest.fixture
def cli_env(monkeypatch, settings, storage):
    monkeypatch.setenv("BROKER_STORAGE_CONNECTION_STRING", settings.storage_connection_string.get_secret_value())
    monkeypatch.setenv("BROKER_JOURNAL_TABLE", settings.journal_table)
    monkeypatch.setenv("BROKER_JOURNAL_CONTAINER", settings.journal_container)
    return storage


def test_cli_replay_and_identity_query(cli_env, writer, capsys):
    _session(writer)
    assert main(["journal", "replay", "--session", "sess-42"]) == 0
    out = capsys.readouterr().out
    assert "demo-postgres=> DELETE FROM customers" in out and "another-session" not in out
    assert main(["journal", "replay", "--identity", DEVIN["object_id"], "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["steps"]) == 5 and doc["query"]["identity"] == DEVIN["object_id"]
    assert main(["journal", "replay"]) == 2
    assert main(["journal", "replay", "--since", "yesterday-ish"]) == 2
    assert "Cannot read the time" in capsys.readouterr().err


def test_cli_export_writes_json_lines_in_time_order(cli_env, writer, capsys, tmp_path):
    _session(writer)
    out = tmp_path / "journal.jsonl"
    assert main(["journal", "export", "--since", "1h", "--output", str(out)]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 8
    assert [line["journal"]["at"] for line in lines] == sorted(line["journal"]["at"] for line in lines)
    assert {"record_id", "event", "principal", "command", "decision", "outcome", "journal"} <= set(lines[0])
    assert lines[1]["response"]["columns"] == ["id", "name", "email"]
    assert "exported 8 records" in capsys.readouterr().err
    future = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    assert main(["journal", "export", "--since", future, "--until", future]) == 2


def test_cli_verify_exit_code_is_zero_only_when_intact(cli_env, writer, capsys):
    ids = _session(writer)
    assert main(["journal", "seal"]) == 0  # the margin keeps these fresh records out of the seal
    assert "sealed seals/" in capsys.readouterr().out
    assert main(["journal", "verify"]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith("INTACT") and "open_intent" in out
    row = cli_env.table.get_entity(*parse_record_id(ids["denied"]))
    row["effect"] = "allow"
    cli_env.table.update_entity(row, mode=UpdateMode.REPLACE)
    assert main(["journal", "verify", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["intact"] is False
    assert [(f["kind"], f["where"]) for f in report["findings"] if f["severity"] == "error"] == [
        ("edited", ids["denied"])]


def test_cli_list_and_show(cli_env, writer, capsys):
    ids = _session(writer)
    assert main(["journal", "list", "--last", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    times = [line.split()[1] for line in lines]
    assert len(lines) == 3 and times == sorted(times, reverse=True)
    assert lines[0].split()[2] == "execute.outcome"
    assert main(["journal", "show", ids["denied"]]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["record_id"] == ids["denied"] and shown["journal"]["seq"] == int(ids["denied"][-10:])
    assert main(["journal", "show", "nonsense"]) == 1


def _stored(record: JournalRecord, seq: int) -> StoredRecord:
    from broker.journal.envelope import GENESIS, Envelope

    record.record_id = f"20250614-0123456789abcdef-{seq:010d}"
    env = Envelope(id=record.record_id, chain="20250614-0123456789abcdef", seq=seq, prev=GENESIS,
                   at=f"2025-06-14T10:00:{seq:02d}.000000Z", record=record.to_dict())
    return StoredRecord(record, env, "h")


def test_kubernetes_commands_and_other_events_replay_too():
    kube = {**base(target="aks-prod"), "command": {"language": "kubectl", "argv": ["get", "pods", "-n", "payments"]}}
    first = _stored(JournalRecord(event=Event.EXECUTE_INTENT, **kube), 1)
    done = _stored(JournalRecord(event=Event.EXECUTE_OUTCOME, response={"text": "NAME   READY\napi-1  1/1\n"},
                                 outcome={"intent": first.id, "status": "ok", "duration_ms": 12.5}, **kube), 2)
    approved = _stored(JournalRecord(event="approval.decided", request_id="r9", principal={"display_name": "Ada"},
                                     target="aks-prod", outcome={"status": "approved"}), 3)
    text = replay_text([first, done, approved])
    assert "$ kubectl get pods -n payments\nNAME   READY\napi-1  1/1\n(12.5 ms)" in text
    assert text.rstrip().endswith("Ada · approval.decided · target=aks-prod, status=approved")
    assert "· 1 command ·" in text.splitlines()[0]
