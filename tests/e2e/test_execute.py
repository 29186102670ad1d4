"""The execute path end to end on real parts: devhost + Azurite + PostgreSQL + Key Vault stand-in."""

from __future__ import annotations

import base64
import json
import re
import time

import pytest

from broker.journal import JournalReader, JournalStorage
from broker.settings import Settings

SECRET_SHAPES = [
    re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"),  # email
    re.compile(r"sk_live_[A-Za-z0-9]{8,}"),
    re.compile(r"AKIA[A-Z0-9]{16}"),
    re.compile(r"ghp_[A-Za-z0-9]{20,}"),
    re.compile(r"://[^\s:/@]+:(?!\[password:)[^\s@/]+@"),  # URL with a password (not a placeholder)
    re.compile(r"(?i)password=(?!\[)[^;\s\]]+"),
]


def reader(stack) -> JournalReader:
    return JournalReader(JournalStorage.from_settings(
        Settings(storage_connection_string=stack.azurite.connection_string)))


def demo_rows(stack, sql: str) -> list[tuple]:
    with stack.postgres.admin("demo") as db:
        return db.execute(sql).fetchall()


def test_allowed_read_returns_rows_with_every_secret_and_personal_value_masked(api, stack):
    r = api.execute({"target": "demo-postgres", "sql": "SELECT * FROM customers ORDER BY id LIMIT 60",
                     "reason": "INC-42 investigate"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["status"] == "done" and body["row_count"] == 60 and body["truncated"] is False
    assert [c["name"] for c in body["columns"]] == ["id", "name", "email", "phone", "card_number", "notes",
                                                   "created_at"]
    truth = demo_rows(stack, "SELECT email, phone, card_number, notes FROM customers ORDER BY id LIMIT 60")
    text = json.dumps(body)
    for email, phone, card, _ in truth:
        assert email not in text and phone not in text and card not in text
    for pattern in SECRET_SHAPES:
        assert not pattern.search(json.dumps(body["rows"])), pattern.pattern
    for row in body["rows"]:
        assert row[2].startswith("[email:") and row[3].startswith("[phone:") and row[4].startswith("[card:")
    assert body["masked"]["email"] == 60 and body["masked"]["card"] == 60
    # ids, names and timestamps the agent needs are untouched
    assert [row[0] for row in body["rows"]] == list(range(1, 61))
    assert body["rows"][0][6].startswith("2024-01-01T07:01:00")
    assert body["decision"]["rule_id"] == "agents-read-demo" and body["risk"] == "read"


def test_equal_values_mask_to_equal_placeholders(api):
    sql = "SELECT email FROM customers WHERE id = 7 UNION ALL SELECT email FROM customers WHERE id = 7"
    rows = api.execute({"target": "demo-postgres", "sql": sql}).json()["rows"]
    assert rows[0][0] == rows[1][0] and rows[0][0].startswith("[email:")


def test_the_call_is_journaled_before_and_after_with_who_what_decision_and_outcome(api, stack):
    r = api.execute({"target": "demo-postgres", "sql": "SELECT id, email FROM customers WHERE id < 4",
                     "reason": "journal check", "ticket": "INC-7"})
    body = r.json()
    stored = sorted(reader(stack).by_request(body["request_id"]), key=lambda s: s.at)
    assert [s.record.event for s in stored] == ["execute.intent", "execute.outcome"]
    assert stored[1].id == body["record_id"]
    intent, outcome = (s.record for s in stored)
    assert intent.principal["object_id"] == "11111111-1111-4111-8111-111111111111"
    assert intent.principal["display_name"] == "Devin (dev agent)"
    assert intent.command == {"language": "sql", "sql": "SELECT id, email FROM customers WHERE id < 4"}
    assert intent.command_digest.startswith("sha256:")
    assert intent.decision["effect"] == "allow" and intent.decision["rule_id"] == "agents-read-demo"
    assert intent.reason == "journal check"
    assert intent.ticket == outcome.ticket == "INC-7"  # every accepted field is journaled
    assert intent.received_at == outcome.received_at <= outcome.started_at <= outcome.ended_at
    assert intent.started_at == intent.ended_at == ""  # nothing had run when the intent was written
    assert intent.time < outcome.time
    assert outcome.outcome["status"] == "ok" and outcome.outcome["rows"] == 3
    assert outcome.outcome["masked"] == {"email": 3}
    # the journal holds the masked response, never the raw value
    raw = demo_rows(stack, "SELECT email FROM customers WHERE id = 1")[0][0]
    assert raw not in json.dumps(outcome.to_dict())
    assert outcome.response["rows"][0][1].startswith("[email:")


def test_types_are_rendered_to_json_faithfully(api):
    sql = ("SELECT id, amount, items, tags, shipped_on, receipt, placed_at, fulfilment, NULL::text AS nothing,"
           " 12345678901234567890::numeric AS big, 'NaN'::float8 AS nan, '{\"a\": [1, 2]}'::json AS j"
           " FROM orders ORDER BY id LIMIT 1")
    r = api.execute({"target": "demo-postgres", "sql": sql})
    assert r.status_code == 200, r.text
    body = r.json()
    types = {c["name"]: c["type"] for c in body["columns"]}
    assert types["amount"] == "numeric" and types["items"] == "jsonb" and types["receipt"] == "bytea"
    row = dict(zip(types, body["rows"][0], strict=True))
    assert isinstance(row["amount"], str) and re.fullmatch(r"\d+\.\d\d", row["amount"])
    assert isinstance(row["items"], list) and set(row["items"][0]) == {"sku", "qty"}
    assert isinstance(row["tags"], list) and len(row["tags"]) == 2
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", row["shipped_on"])
    assert len(base64.b64decode(row["receipt"])) == 8
    assert row["placed_at"].endswith("+00:00")
    assert re.fullmatch(r"P(\d+D)?T\d+S|PT\d+S", row["fulfilment"]) or row["fulfilment"].startswith("P")
    assert row["nothing"] is None
    assert row["big"] == "12345678901234567890"
    assert row["nan"] == "nan"
    assert row["j"] == {"a": [1, 2]}


def test_row_cap_truncates_and_says_so(api):
    r = api.execute({"target": "demo-postgres", "sql": "SELECT g FROM generate_series(1, 5000) AS g"})
    body = r.json()
    assert body["truncated"] is True and body["row_count"] == 500  # the dev policy's max_rows
    assert body["rows"][-1] == [500]


def test_byte_cap_truncates_and_says_so(api):
    r = api.execute({"target": "demo-postgres",
                     "sql": "SELECT g, repeat('x', 100000) AS blob FROM generate_series(1, 30) AS g"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["truncated"] is True
    assert 5 <= body["row_count"] < 11  # 1 MiB cap / ~100 kB rows
    assert sum(len(row[1]) for row in body["rows"]) <= 1024 * 1024


def test_statement_timeout_cancels_a_long_read(api, stack):
    # a read that works (no sleeping: pg_sleep is not a read) longer than the 5 s statement timeout
    slow = "SELECT count(*) FROM generate_series(1, 100000) a CROSS JOIN generate_series(1, 100000) b"
    r = api.execute({"target": "demo-postgres", "sql": slow})
    assert r.status_code == 504
    problem = r.json()
    assert problem["code"] == "statement_timeout"
    assert r.headers["content-type"].startswith("application/problem+json")
    with stack.postgres.admin() as db:  # the backend is not left running the query
        busy = db.execute("SELECT count(*) FROM pg_stat_activity WHERE query = %s AND state = 'active'",
                          (slow,)).fetchone()[0]
    assert busy == 0


def test_the_target_list_shows_names_but_no_connection_details(api):
    r = api.http.get("/api/targets", headers={"Authorization": f"Bearer {api.token()}"})
    assert r.status_code == 200
    text = r.text
    assert "demo-postgres" in text and "127.0.0.1" not in text and "demo-postgres-agent" not in text


def test_health_says_what_is_reachable_without_leaking_configuration(api, stack):
    r = api.http.get("/api/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok", body
    assert body["checks"] == {"configuration": "ok", "journal": "ok", "key_vault": "ok",
                              "targets": {"demo-postgres": "ok", "demo-k8s": "ok"}}
    for leak in ("127.0.0.1", "devstoreaccount1", str(stack.ports.postgres), str(stack.ports.kubernetes), "secret"):
        assert leak not in r.text


@pytest.mark.parametrize("sql", ["DELETE FROM customers WHERE id = 11", "UPDATE customers SET name = 'x'",
                                 "DROP TABLE customers"])
def test_writes_do_not_run_on_the_read_path(api, stack, sql):
    before = demo_rows(stack, "SELECT count(*), max(name) FROM customers")
    r = api.execute({"target": "demo-postgres", "sql": sql})
    assert r.status_code in (202, 403, 422), r.text
    assert r.json().get("code") or r.json().get("status") == "pending"
    assert demo_rows(stack, "SELECT count(*), max(name) FROM customers") == before


def test_numbers_json_cannot_hold_exactly_leave_the_journal_intact(api, stack):
    """``1e17`` as a double is written by RFC 8785 as an integer beyond 2^53: it used to make
    ``journal verify`` report the call's immutable copy as replaced (a false alarm at will)."""
    from datetime import UTC, datetime, timedelta

    from broker.journal import Verifier

    since = datetime.now(UTC) - timedelta(seconds=1)
    sql = ("SELECT 1e17::float8 AS a, -1e17::float8 AS b, 2^60::float8 AS c, 5e-324::float8 AS d, "
           "'-0'::float8 AS e, 'Infinity'::float8 AS f, 12345678901234567890 AS g, 'x😀' AS h")
    r = api.execute({"target": "demo-postgres", "sql": sql})
    assert r.status_code == 200, r.text
    assert r.json()["rows"][0][:2] == [1e17, -1e17]  # the agent's answer is unchanged
    storage = JournalStorage.from_settings(Settings(storage_connection_string=stack.azurite.connection_string))
    stored = reader(stack).get(r.json()["record_id"])
    assert stored.record.response["rows"][0][:3] == ["1e+17", "-1e+17", "1.152921504606847e+18"]
    for _ in range(50):  # the immutable copies land right behind their rows
        report = Verifier(storage).verify(since=since)
        if not [f for f in report.findings if f.kind != "open_intent"]:
            break
        time.sleep(0.1)
    assert [f for f in report.findings if f.kind != "open_intent"] == [], report.render()


def test_server_timing_names_each_phase_of_the_call_and_the_host_apart(api):
    r = api.execute({"target": "demo-postgres", "sql": "SELECT id FROM customers WHERE id = 42"})
    assert r.status_code == 200, r.text
    phases = {}
    for part in r.headers["server-timing"].split(","):
        name, _, dur = part.strip().partition(";dur=")
        phases[name] = float(dur)
    assert list(phases) == ["thread", "auth", "decide", "admission", "journal-intent", "run", "mask",
                            "journal-outcome", "app", "devhost"]
    assert all(ms >= 0 for ms in phases.values())
    inside = sum(ms for name, ms in phases.items() if name not in ("app", "devhost"))
    assert inside <= phases["app"] + 0.05 <= phases["devhost"] + 0.1  # rounded to 0.01 ms each


def test_a_refused_call_reports_no_timing(api):
    r = api.execute({"target": "demo-postgres", "sql": "DELETE FROM customers"})
    assert r.status_code in (202, 403) and "server-timing" not in r.headers


@pytest.mark.parametrize("sql", ["SELECT id FROM customers WHERE id = $1",
                                 "SELECT name FROM customers WHERE id = $1 OR id = $2"])
def test_a_parameter_without_a_value_is_the_commands_fault_not_an_unreachable_target(api, sql):
    """PostgreSQL answers an unbound ``$1`` with 08P01 (protocol violation) and stays connected:
    the agent must be told to fix its command (422), not that the target is down (503)."""
    r = api.execute({"target": "demo-postgres", "sql": sql})
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "query_failed" and r.json()["sqlstate"] == "08P01"
    assert api.execute({"target": "demo-postgres", "sql": "SELECT 1"}).status_code == 200
