"""What a fault scenario proves: each call's answer set against the journal, ``journal verify``
and the database's own record of what ran."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from broker.journal import JournalReader, JournalStorage
from broker.journal.envelope import parse_blob_name
from broker.journal.reader import StoredRecord
from broker.settings import Settings
from devhost.faults.load import Call
from devhost.stack import REPO_ROOT, DevStack

CLOSING = ("execute.outcome", "execute.denied", "execute.pending")


def journal_by_marker(stack: DevStack, markers: set[str]) -> dict[str, list[StoredRecord]]:
    """Every journal record of today and yesterday whose command carries one of the markers."""
    assert stack.azurite
    storage = JournalStorage.from_settings(Settings(storage_connection_string=stack.azurite.connection_string))
    try:
        now = datetime.now(UTC)
        found: dict[str, list[StoredRecord]] = defaultdict(list)
        for stored in JournalReader(storage).iter_range(now - timedelta(days=1), now + timedelta(minutes=1),
                                                        with_response=False):
            sql = str(stored.record.command.get("sql", ""))
            start = sql.find("fault-")
            if start < 0:
                continue
            marker = sql[start:].split("'")[0].rstrip(";")
            if marker in markers:
                found[marker].append(stored)
        return found
    finally:
        storage.close()


def chains(stack: DevStack) -> set[str]:
    """Every chain in the journal now (of today and yesterday): taken just before a killed host is
    restarted, these are the chains whose writer is dead."""
    assert stack.azurite
    storage = JournalStorage.from_settings(Settings(storage_connection_string=stack.azurite.connection_string))
    try:
        now = datetime.now(UTC)
        return {s.envelope.chain for s in JournalReader(storage).iter_range(
            now - timedelta(days=1), now + timedelta(minutes=1), with_response=False)}
    finally:
        storage.close()


def copy_lag(stack: DevStack) -> int:
    """Journal rows of today whose write-once copy is not written yet: what a SIGKILL now would
    leave without a copy (copies.py writes them behind the rows)."""
    assert stack.azurite
    storage = JournalStorage.from_settings(Settings(storage_connection_string=stack.azurite.connection_string))
    try:
        day = datetime.now(UTC).strftime("%Y%m%d")
        rows = sum(1 for _ in storage.table.query_entities(
            f"PartitionKey ge '{day}-' and PartitionKey lt '{day}.'", select=["PartitionKey"]))
        copies = sum(1 for _ in storage.blob_names(f"records/{day[:4]}/{day[4:6]}/{day[6:]}/"))
        return rows - copies
    finally:
        storage.close()


def seal(stack: DevStack, margin: timedelta = timedelta(seconds=1)) -> None:
    """Run the sealer as the ``journal_seal`` timer does (with a journal to record lost copies in),
    but with a margin of a second instead of two minutes: the agents have stopped, so every row
    older than that is durable, and a live host's copies trail its rows by milliseconds."""
    from broker.journal import JournalWriter, Sealer

    assert stack.azurite
    storage = JournalStorage.from_settings(Settings(storage_connection_string=stack.azurite.connection_string))
    journal = JournalWriter(storage)
    try:
        Sealer(storage, journal=journal, margin=margin).seal()
    finally:
        journal.close()
        storage.close()


def verify(stack: DevStack, *, cli: bool = True) -> dict[str, Any]:
    """``python -m broker journal verify --json`` against the stack's storage, as an auditor runs it
    (or the same ``Verifier`` in this process, which saves the CLI's start-up)."""
    assert stack.azurite
    if not cli:
        from broker.journal import Verifier

        storage = JournalStorage.from_settings(Settings(storage_connection_string=stack.azurite.connection_string))
        try:
            return Verifier(storage).verify().to_dict()
        finally:
            storage.close()
    env = {**os.environ, "BROKER_STORAGE_CONNECTION_STRING": stack.azurite.connection_string}
    done = subprocess.run([sys.executable, "-m", "broker", "journal", "verify", "--json"], cwd=REPO_ROOT,
                          env=env, capture_output=True, text=True, timeout=1200)
    try:
        return json.loads(done.stdout)
    except ValueError:
        return {"intact": False, "findings": [{"kind": "verify_failed", "where": "", "detail": done.stderr[-500:]}]}


@dataclass
class Result:
    """One scenario's figures and every violation found (empty when the promises held)."""

    scenario: str
    calls: int = 0
    ok: int = 0
    refused: int = 0  # answered with a problem (503 while a dependency was down, ...)
    cut: int = 0  # no answer: the agent cannot know whether it ran
    unreachable: int = 0  # connection refused: nothing was sent
    journaled: int = 0  # calls whose outcome (or refusal, or pending) is in the journal
    lost: int = 0
    twice: int = 0
    open_intents: int = 0
    verify: str = ""
    uncopied: int = 0  # rows a killed host journaled whose immutable copy it never wrote (verify: copy_lost)
    recovered_s: float | None = None
    wall_s: float = 0.0
    verify_s: float = 0.0  # how long `journal verify` took over the whole journal so far
    verified_records: int = 0
    phases: dict[str, float] = field(default_factory=dict)  # seconds: injecting, healing, checking
    codes: dict[str, int] = field(default_factory=dict)  # what the refusals said
    problems: list[str] = field(default_factory=list)  # broken promises
    gaps: list[str] = field(default_factory=list)  # known, named shortfalls (docs/journal.md "Faults")

    def row(self) -> list[str]:
        answered = f"{self.ok} / {self.refused} / {self.cut} / {self.unreachable}"
        recovered = "—" if self.recovered_s is None else f"{self.recovered_s:.1f} s"
        return [self.scenario, str(self.calls), answered, str(self.journaled), str(self.lost), str(self.twice),
                self.verify, recovered]


HEADERS = ["scenario", "calls", "ok / refused / cut / unreachable", "journaled", "lost", "ran twice", "verify",
           "next call 200 after"]


def assess(stack: DevStack, result: Result, calls: list[Call], statement_runs: dict[str, int],
           write_runs: dict[str, int], allowed_open: set[str], *, dead_chains: frozenset[str] = frozenset(),
           verify_cli: bool = True) -> Result:
    """Fill ``result`` from the calls and the evidence; ``allowed_open`` collects the intent ids of
    calls that were cut (over every scenario on this stack), the only place ``open_intent`` may be.

    ``dead_chains`` are the chains of hosts that were SIGKILLed. Their copy queue dies with them
    (broker/journal/copies.py), so rows at their tails have no immutable copy; once the sealer has
    recorded them (journal.copies_lost) verify reports them as ``copy_lost``, counted as
    ``uncopied`` and named in ``gaps``. Any other finding but a cut call's ``open_intent`` is a problem."""
    by_marker = journal_by_marker(stack, {c.marker for c in calls})
    result.calls = len(calls)
    for call in calls:
        records = by_marker.get(call.marker, [])
        events = [s.record.event for s in records]
        intents = [s for s in records if s.record.event == "execute.intent"]
        outcomes = [s for s in records if s.record.event == "execute.outcome"]
        ran = write_runs[call.marker] if call.kind == "write" else statement_runs.get(call.marker, 0)
        if call.status in (200, 202):  # done, or (a write) waiting for its approver
            result.ok += 1
        elif call.unreachable:
            result.unreachable += 1
        elif call.cut:
            result.cut += 1
        else:
            result.refused += 1
            key = f"{call.status} {call.code}" + (f" ({call.reason})" if call.reason else "")
            result.codes[key] = result.codes.get(key, 0) + 1
        if any(e in CLOSING for e in events):
            result.journaled += 1
        where = f"{call.kind} {call.marker} (answer {call.status} {call.code})"
        if call.status == 200 and (not outcomes or call.record_id not in {s.id for s in outcomes}):
            result.lost += 1
            result.problems.append(f"{where}: answered 200 without its outcome record: {events}")
        if ran and not intents:
            result.lost += 1
            result.problems.append(f"{where}: ran {ran}x in the database without a journaled intent: {events}")
        if len(intents) > len(outcomes):
            if call.cut or call.kind == "write":
                allowed_open.update(s.id for s in intents)
            else:
                result.lost += 1
                result.problems.append(f"{where}: answered, yet an intent has no outcome: {events}")
        if ran > 1 or len(intents) > 1:
            result.twice += 1
            result.problems.append(f"{where}: ran {ran}x, {len(intents)} intents")
    began = time.monotonic()
    report = verify(stack, cli=verify_cli)
    result.verify_s = time.monotonic() - began
    result.verified_records = int(report.get("records", 0))
    findings = report.get("findings", [])
    # A SIGKILLed host's queued copies die with it; the sealer (run before this, see
    # scenarios.FaultStack.run) names those rows in a journal.copies_lost record, and verify reports
    # them as ``copy_lost`` warnings. Anything else (inserted, truncated, blob_missing: what they
    # looked like before) is a problem, and so is a lost copy on a chain of a host that was not killed.
    lost = [f for f in findings if f["kind"] == "copy_lost" and _chain_of(f) in dead_chains]
    errors = [f for f in findings if f["kind"] != "open_intent" and f not in lost]
    result.uncopied = len(lost)
    if lost:
        per_chain: dict[str, int] = defaultdict(int)
        for f in lost:
            per_chain[_chain_of(f)] += 1
        result.gaps.append(f"{len(lost)} rows of killed hosts' chains lost their immutable copy, recorded by "
                           "journal.copies_lost (verify: copy_lost): "
                           + ", ".join(f"{c} {n}" for c, n in sorted(per_chain.items())))
    opens = [f for f in findings if f["kind"] == "open_intent"]
    stray = [f for f in opens if f["where"] not in allowed_open]
    result.open_intents = len(opens)
    for f in errors + stray:
        result.problems.append(f"verify: {f['kind']} {f['where']}: {f['detail'][:200]}")
    if errors or stray:
        result.verify = "NOT clean: " + ", ".join(sorted({f["kind"] for f in errors + stray}))
    else:
        notes = [f"{len(opens)} open_intent, all cut calls"] if opens else []
        notes += [f"{len(lost)} copy_lost, all killed hosts' rows, recorded"] if lost else []
        result.verify = "clean" + (f" ({'; '.join(notes)})" if notes else "")
    return result


def _chain_of(finding: dict[str, str]) -> str:
    """The chain (partition key) a finding is about: ``inserted`` names a record id
    (``<chain>-<seq>``), ``blob_missing`` a blob (``records/…/<writer>/<seq>.json``)."""
    where = finding["where"]
    if finding["kind"] == "truncated":
        return where
    if finding["kind"] == "blob_missing":
        parsed = parse_blob_name(where)
        return parsed[0] if parsed else ""
    return where.rsplit("-", 1)[0]


def table(results: list[Result]) -> str:
    """The results as a Markdown table."""
    rows = [HEADERS, ["---"] * len(HEADERS)] + [r.row() for r in results]
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)
