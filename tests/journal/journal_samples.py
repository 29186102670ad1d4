"""Records shaped like the execute path's, for the journal's tests and benchmark."""

from __future__ import annotations

import uuid
from typing import Any

from broker.journal import Event, JournalRecord, JournalWriter

DEVIN = {"tenant_id": "8f0d5c1e-0000-4000-8000-000000000de0", "object_id": "11111111-1111-4111-8111-111111111111",
         "app_id": "de710000-0000-4000-8000-000000000a9e", "display_name": "Devin (dev agent)", "kind": "app",
         "roles": ["Broker.Caller"], "groups": ["agents"]}
ADA = {**DEVIN, "object_id": "22222222-2222-4222-8222-222222222222", "app_id": "", "display_name": "Ada Approver",
       "kind": "user", "roles": ["Broker.Approver"]}
SQL = "SELECT id, name, email FROM customers ORDER BY id LIMIT 3"
ROWS = [[1, "[name:1a2b3c]", "[email:7f3a9c]"], [2, "[name:4d5e6f]", "[email:0b1c2d]"],
        [3, "[name:a7b8c9]", "[email:e3f4a5]"]]


def base(request_id: str | None = None, session_id: str = "", principal: dict[str, Any] | None = None,
         sql: str = SQL, target: str = "demo-postgres") -> dict[str, Any]:
    return {"request_id": request_id or str(uuid.uuid4()), "principal": principal or DEVIN, "session_id": session_id,
            "target": target, "command": {"language": "sql", "sql": sql}, "command_digest": "sha256:abc",
            "classification": {"risk": "read", "reason": "a SELECT", "read_only": True},
            "decision": {"effect": "allow", "rule_id": "agents-read", "reason": "agents may read",
                         "policy_version": "3fa2c1d0e9b8a7f6", "trace": []},
            "client": {"ip": "10.0.0.7", "forwarded_for": "10.0.0.7", "user_agent": "devin/1.0",
                       "http_request_id": "req-1"},
            "reason": "INC-123"}


def intent(**kwargs: Any) -> JournalRecord:
    return JournalRecord(event=Event.EXECUTE_INTENT, **base(**kwargs))


def outcome(intent_id: str, rows: list[list[Any]] | None = None, **kwargs: Any) -> JournalRecord:
    rows = ROWS if rows is None else rows
    return JournalRecord(event=Event.EXECUTE_OUTCOME, response={"columns": ["id", "name", "email"], "rows": rows},
                         outcome={"intent": intent_id, "status": "ok", "rows": len(rows), "bytes": 120,
                                  "truncated": False, "masked": {"email": len(rows), "name": len(rows)},
                                  "command_status": "SELECT 3", "affected": None, "duration_ms": 4.2},
                         **base(**kwargs))


def execute(writer: JournalWriter, **kwargs: Any) -> tuple[str, str]:
    """An intent and its outcome, as the execute path writes them."""
    rec = intent(**kwargs)
    intent_id = writer.write(rec)
    return intent_id, writer.write(outcome(intent_id, request_id=rec.request_id, **kwargs))


def write_in_a_process(connection_string: str, table: str, container: str, executes: int) -> list[str]:
    """A separate writer process (its own chains), as another Function instance would be."""
    from concurrent.futures import ThreadPoolExecutor

    from broker.journal import JournalStorage
    from broker.settings import Settings

    storage = JournalStorage.from_settings(Settings(storage_connection_string=connection_string,
                                                    journal_table=table, journal_container=container))
    writer = JournalWriter(storage)
    try:
        with ThreadPoolExecutor(4) as pool:
            return [rid for pair in pool.map(lambda _: execute(writer), range(executes)) for rid in pair]
    finally:
        writer.close()
        storage.close()
