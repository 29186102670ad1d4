"""Concurrent agents against a dev stack, and the evidence of what each call did.

Every call carries a unique marker in its SQL, so what happened to it can be found in three
independent places: the answer the agent got, the journal's records (by the SQL they hold), and
PostgreSQL's own statement log (``log_statement=all``: one ``execute`` line per statement run)
or, for an approved write, the marker appended to a row (counted, so a second run shows).
"""

from __future__ import annotations

import re
import statistics
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from devhost.identities import IDENTITIES
from devhost.stack import DevStack

# The demo rows the fault scenarios' writes mark (one per approved write; never the readers' rows).
WRITE_ROWS = range(31, 51)


@dataclass
class Call:
    """One agent call: what it sent (by marker) and what came back."""

    marker: str
    kind: str  # "read" | "write"
    started: float
    ended: float = 0.0
    status: int | None = None  # None: no answer (the connection was cut or timed out)
    unreachable: bool = False  # the connection was refused: nothing was sent, nothing can have run
    code: str = ""
    reason: str = ""  # a problem's ``reason`` extension (journal_unavailable: copies_failing, ...)
    request_id: str = ""
    record_id: str = ""

    @property
    def latency(self) -> float:
        return self.ended - self.started

    @property
    def cut(self) -> bool:
        """The agent cannot know whether it ran: no answer, or a 5xx from the platform."""
        return (self.status is None and not self.unreachable) or ((self.status or 0) >= 500 and not self.code)


def read_sql(marker: str) -> str:
    """A read whose text is unique: the marker is a literal PostgreSQL logs verbatim."""
    return f"SELECT id, name FROM customers WHERE name = '{marker}'"  # noqa: S608 - a hex marker


def slow_read_sql(marker: str) -> str:
    """A read that keeps its backend busy for a while (a query to kill mid-way)."""
    return f"SELECT count(*), '{marker}' AS m FROM generate_series(1, 4000000) g"  # noqa: S608


def write_sql(marker: str, row: int) -> str:
    """A write that leaves a countable trace: run twice, the marker is on the row twice."""
    return f"UPDATE customers SET notes = coalesce(notes, '') || '{marker};' WHERE id = {row}"  # noqa: S608


class Agents:
    """``n`` agent threads, each with its own connection and token, calling until stopped."""

    def __init__(self, stack: DevStack, n: int = 20, *, slow_every: int = 0, timeout: float = 30.0) -> None:
        self.stack = stack
        self.n = n
        self.slow_every = slow_every  # every k-th call of an agent is a slow read (0: none)
        self.timeout = timeout
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.tokens = [agent_token(stack, i) for i in range(n)]

    def start(self, calls_each: int | None = None) -> Agents:
        self._stop.clear()
        self._threads = [threading.Thread(target=self._run, args=(i, calls_each), daemon=True, name=f"agent-{i}")
                         for i in range(self.n)]
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> list[Call]:
        self._stop.set()
        return self.join()

    def join(self) -> list[Call]:
        for t in self._threads:
            t.join(self.timeout + 10)
        return self.calls

    def _run(self, i: int, calls_each: int | None) -> None:
        headers = {"Authorization": f"Bearer {self.tokens[i]}"}
        with httpx.Client(base_url=self.stack.base_url, timeout=self.timeout) as client:
            k = 0
            while not self._stop.is_set() and (calls_each is None or k < calls_each):
                k += 1
                marker = f"fault-{uuid.uuid4().hex}"
                slow = bool(self.slow_every) and k % self.slow_every == 0
                sql = slow_read_sql(marker) if slow else read_sql(marker)
                call = execute(client, headers, marker, "read", sql)
                with self._lock:
                    self.calls.append(call)
                if call.unreachable:
                    time.sleep(0.5)  # nobody listens: a real agent waits before it knocks again
                elif call.status is None or call.status >= 500:
                    time.sleep(0.2)  # a real agent backs off a little; no hot loop on a sick host


def agent_token(stack: DevStack, i: int) -> str:
    """Agent ``i``'s own identity (the dev agent's roles and groups, its own object id): fair share
    limits each caller, and twenty agents are twenty callers."""
    assert stack.issuer
    claims = stack.issuer.claims_for(IDENTITIES["devin"])
    oid = str(uuid.UUID(int=0xFA0170000000 + i))
    claims.update(oid=oid, sub=f"sub-fault-agent-{i}", azp=oid, app_displayname=f"fault agent {i}")
    return stack.issuer.sign(claims)


def execute(client: httpx.Client, headers: dict[str, str], marker: str, kind: str, sql: str) -> Call:
    call = Call(marker, kind, time.monotonic())
    try:
        r = client.post("/api/execute", json={"target": "demo-postgres", "sql": sql, "reason": "fault suite"},
                        headers=headers)
    except httpx.ConnectError:
        call.ended, call.unreachable = time.monotonic(), True
        return call
    except httpx.HTTPError:
        call.ended = time.monotonic()
        return call
    call.ended = time.monotonic()
    call.status = r.status_code
    try:
        body = r.json()
    except ValueError:
        body = {}
    if isinstance(body, dict):
        call.code = str(body.get("code", ""))
        # journal_unavailable says why in ``reason``; a refused statement in ``sqlstate``
        call.reason = str(body.get("reason") or body.get("sqlstate") or "")
        call.request_id = str(body.get("request_id", ""))
        call.record_id = str(body.get("record_id", ""))
    return call


@dataclass
class Writes:
    """Writes that wait for a DBA: requested, then approved (or left to expire)."""

    stack: DevStack
    calls: list[Call] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)  # marker -> row

    def request(self, count: int) -> list[Call]:
        headers = {"Authorization": f"Bearer {self.stack.token('devin')}"}
        made = []
        with httpx.Client(base_url=self.stack.base_url, timeout=30) as client:
            for i in range(count):
                marker = f"fault-w-{uuid.uuid4().hex}"
                row = WRITE_ROWS[(len(self.rows) + i) % len(WRITE_ROWS)]
                call = execute(client, headers, marker, "write", write_sql(marker, row))
                assert call.status == 202, f"a write should wait for a DBA, got {call.status} {call.code}"
                self.rows[marker] = row
                made.append(call)
        self.calls += made
        return made

    def approve(self, calls: list[Call]) -> list[int]:
        """The DBA approves each (their own Entra token); the status codes of the decisions."""
        headers = {"Authorization": f"Bearer {self.stack.token('approver')}"}
        with httpx.Client(base_url=self.stack.base_url, timeout=30) as client:
            return [client.post(f"/api/approvals/{c.request_id}/decision", json={"verdict": "approve"},
                                headers=headers).status_code for c in calls]

    def status(self, call: Call) -> str:
        return str(self.view(call).get("status", ""))

    def view(self, call: Call) -> dict[str, Any]:
        """The agent's view of its request (``GET /api/requests/{id}``)."""
        headers = {"Authorization": f"Bearer {self.stack.token('devin')}"}
        r = httpx.get(f"{self.stack.base_url}/api/requests/{call.request_id}", headers=headers, timeout=30)
        return r.json() if r.status_code == 200 else {"status": f"http {r.status_code}"}

    def wait(self, calls: list[Call], until: tuple[str, ...], timeout: float = 30.0) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while True:
            states = {c.request_id: self.status(c) for c in calls}
            if all(s in until for s in states.values()) or time.monotonic() > deadline:
                return states
            time.sleep(0.2)

    def runs(self) -> dict[str, int]:
        """How many times each write ran: its marker counted on its row."""
        assert self.stack.postgres
        with self.stack.postgres.admin("demo") as db:
            notes = dict(db.execute("SELECT id, coalesce(notes, '') FROM customers").fetchall())
        return {m: notes.get(row, "").count(f"{m};") for m, row in self.rows.items()}


def statement_runs(stack: DevStack) -> dict[str, int]:
    """How many times PostgreSQL ran a statement carrying each marker (its statement log)."""
    assert stack.postgres
    text = stack.postgres.log_path.read_text(errors="replace")
    counts: dict[str, int] = {}
    for m in re.finditer(r"LOG:  (?:execute [^:]*|statement): .*?'(fault-[0-9a-f]{32})'", text):
        counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    return counts


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def summary(calls: list[Call], wall: float) -> dict[str, Any]:
    ok = [c.latency * 1000 for c in calls if c.status == 200]
    return {"calls": len(calls), "ok": len(ok), "p50_ms": percentile(ok, 50), "p99_ms": percentile(ok, 99),
            "calls_per_s": len(calls) / wall if wall else 0.0}
