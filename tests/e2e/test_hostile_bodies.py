"""Every endpoint that takes a body, against the running devhost: hostile bodies get a precise 4xx,
never a 5xx, and leave nothing behind (no journal record, no approval request, no grant)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from azure.data.tables import TableClient

from broker.settings import Settings
from tests.unit.test_body import HOSTILE, nested_manifest

RID = str(uuid.uuid4())  # an approval request id that exists nowhere: the body is refused before any lookup
JSON_ENDPOINTS = {
    "execute": "/api/execute",
    "grants": "/api/grants",
    "approval decision (Entra)": f"/api/approvals/{RID}/decision",
    "approval decision (signed, Logic App)": f"/api/approvals/{RID}/decision",
}
BODIES = {
    **{name: (raw, 400, code) for name, (raw, code) in HOSTILE.items()},
    "a huge string": (b'{"target": "demo-postgres", "sql": "SELECT 1", "reason": "' + b"x" * 400_000 + b'"}',
                      413, "body_too_large"),
    "a huge manifest": (nested_manifest(3) + b" " * 300_000, 413, "body_too_large"),
}


def _rows_since(stack, since: datetime) -> dict[str, int]:
    settings = Settings()
    conn = stack.azurite.connection_string
    counts = {}
    for table in (settings.journal_table, settings.approvals_table, settings.grants_table):
        with TableClient.from_connection_string(conn, table) as client:
            try:
                rows = client.query_entities("Timestamp ge @since", parameters={"since": since},
                                             select=["PartitionKey"])
                counts[table] = sum(1 for _ in rows)
            except Exception:  # a table nobody wrote to yet
                counts[table] = 0
    return counts


@pytest.mark.parametrize("endpoint", list(JSON_ENDPOINTS))
def test_hostile_json_bodies_are_refused_precisely_and_leave_nothing(api, stack, endpoint):
    identity = "approver" if "decision" in endpoint else "devin"
    headers = {"Authorization": f"Bearer {api.token(identity)}", "Content-Type": "application/json"}
    if "signed" in endpoint:
        headers = {"Content-Type": "application/json", "X-Broker-Signature": "t=1,v1=" + "0" * 64}
    since = datetime.now(UTC)
    wrong = []
    for name, (raw, status, code) in BODIES.items():
        r = api.http.post(JSON_ENDPOINTS[endpoint], content=raw, headers=headers)
        problem = r.json() if r.headers.get("content-type", "").startswith("application/problem+json") else {}
        if (r.status_code, problem.get("code")) != (status, code):
            wrong.append((name, r.status_code, problem.get("code") or r.text[:120]))
    assert wrong == []
    assert set(_rows_since(stack, since).values()) == {0}  # nothing journaled, requested or granted
    if endpoint == "execute":  # the count above sees what a call leaves behind
        assert api.execute({"target": "demo-postgres", "sql": "SELECT 1", "reason": "🚀 astral"}).status_code == 200
        assert _rows_since(stack, since)[Settings().journal_table] == 2  # its intent and its outcome


FORMS = {
    "NUL in the token": (b"t=%00&nonce=x&verdict=approve", 400),
    "invalid UTF-8 in a field": (b"t=%ff%fe&nonce=x&verdict=approve", 400),
    "not ASCII on the wire": ("t=é&verdict=approve".encode(), 400),
    "too many fields": (b"&".join(b"f%d=1" % i for i in range(50)), 400),
    "too large": (b"t=" + b"x" * 20_000, 400),
    "a JSON body instead of the form": (HOSTILE["100,000 nested ["][0], 415),
}


def test_hostile_approval_forms_are_refused_and_decide_nothing(api, stack):
    since = datetime.now(UTC)
    wrong = []
    for name, (raw, status) in FORMS.items():
        ctype = "application/json" if status == 415 else "application/x-www-form-urlencoded"
        r = api.http.post(f"/api/approvals/{RID}", content=raw, headers={"Content-Type": ctype})
        if r.status_code != status:
            wrong.append((name, r.status_code, r.text[:120]))
    assert wrong == []
    assert set(_rows_since(stack, since).values()) == {0}


def test_a_body_sent_where_none_is_read_changes_nothing(api, stack):
    """``POST /api/grants/{id}/revoke`` reads no body: a hostile one is ignored, never a 5xx."""
    headers = {"Authorization": f"Bearer {api.token()}", "Content-Type": "application/json"}
    for raw, _, _ in list(BODIES.values())[:6]:
        r = api.http.post(f"/api/grants/{RID}/revoke", content=raw, headers=headers)
        assert r.status_code == 404, r.text
