"""In-memory implementations of the approval domain's storage ports, for the fast test layer.

Never more permissive than the adapter: rows go through ``RequestStore``'s own mapping (so a command
too large for a Table row is refused here too, and values come back as Table Storage returns them),
every change is atomic under one lock with a version per row standing in for the ETag, and
``tests/approvals/test_store_contract.py`` runs the same cases against both implementations.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from broker.approvals.requests import (
    ApprovalRequest,
    DecisionRow,
    IndexEntry,
    RequestStore,
    approver_row_key,
    moved_to,
)
from broker.grants.store import GrantRecord, GrantStore, partition_for
from broker.journal.records import JournalRecord
from broker.policy import Grant
from broker.problems import Conflict, NotFound


class MemoryRequestStore:
    """``RequestRecords`` in a dict: (partition, row) -> (version, entity)."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._version = 0

    def _put(self, key: tuple[str, str], entity: dict[str, Any]) -> int:
        self._version += 1
        # Table Storage returns what it stored, not the caller's object: a JSON round trip of the
        # values (datetimes kept) stands in for it.
        stored = {k: (v if isinstance(v, datetime) else json.loads(json.dumps(v))) for k, v in entity.items()}
        self._rows[key] = (self._version, stored)
        return self._version

    def _insert_once(self, key: tuple[str, str], entity: dict[str, Any]) -> bool:
        with self._lock:
            if key in self._rows:
                return False
            self._put(key, entity)
            return True

    # --- the request row ---
    def create(self, request: ApprovalRequest) -> None:
        entity = RequestStore._entity(request)  # the adapter's mapping: its size refusal included
        if not self._insert_once((request.request_id, "request"), entity):
            raise Conflict(f"Request {request.request_id} already exists.", code="duplicate_request")

    def get(self, request_id: str) -> ApprovalRequest:
        with self._lock:
            found = self._rows.get((request_id, "request"))
        if found is None:
            raise NotFound(f"No approval request {request_id}.", code="not_found")
        version, entity = found
        return replace(RequestStore._request(dict(entity)), etag=str(version))

    def find(self, request_id: str) -> ApprovalRequest | None:
        try:
            return self.get(request_id)
        except NotFound:
            return None

    def transition(self, request_id: str, allowed_from: Iterable[str], to: str, **changes: Any) -> ApprovalRequest:
        allowed = set(allowed_from)
        with self._lock:
            found = self._rows.get((request_id, "request"))
            if found is None:
                raise NotFound(f"No approval request {request_id}.", code="not_found")
            current = RequestStore._request(dict(found[1]))
            self._put((request_id, "request"), RequestStore._entity(moved_to(current, allowed, to, changes)))
        return self.get(request_id)

    # --- decisions and used tokens ---
    def add_decision(self, request_id: str, row: DecisionRow) -> bool:
        return self._insert_once((request_id, approver_row_key(row.approver)), {
            "approver": row.approver, "name": row.name, "verdict": row.verdict, "via": row.via, "at": row.at,
            "comment": row.comment})

    def use_token(self, request_id: str, token_id: str, approver: str) -> bool:
        return self._insert_once((request_id, f"token_{token_id}"),
                                 {"approver": approver, "at": datetime.now(UTC).isoformat()})

    def token_used(self, request_id: str, token_id: str) -> bool:
        with self._lock:
            return (request_id, f"token_{token_id}") in self._rows

    def release(self, request_id: str, token_id: str | None, approver: str) -> None:
        with self._lock:
            for key in [approver_row_key(approver)] + ([f"token_{token_id}"] if token_id else []):
                self._rows.pop((request_id, key), None)

    def decisions(self, request_id: str) -> list[DecisionRow]:
        with self._lock:
            rows = [e for (pk, rk), (_, e) in self._rows.items() if pk == request_id and rk.startswith("decision_")]
        return sorted((DecisionRow(r["approver"], r["name"], r["verdict"], r["via"], r["at"], r.get("comment") or "")
                       for r in rows), key=lambda d: d.at)

    # --- claims ---
    def claim(self, index: str, request: ApprovalRequest) -> IndexEntry | None:
        entity = {"request_id": request.request_id, "target": request.target,
                  "command_digest": request.command_digest}
        with self._lock:
            found = self._rows.get((index, "claim"))
            if found is None:
                self._put((index, "claim"), entity)
                return None
            version, held = found
            return IndexEntry(held["request_id"], held["target"], held["command_digest"], str(version))

    def take_over(self, index: str, held: IndexEntry, request: ApprovalRequest) -> bool:
        with self._lock:
            found = self._rows.get((index, "claim"))
            if found is None or str(found[0]) != held.etag:
                return False
            self._put((index, "claim"), {"request_id": request.request_id, "target": request.target,
                                         "command_digest": request.command_digest})
            return True

    def release_claim(self, index: str, request_id: str) -> None:
        with self._lock:
            found = self._rows.get((index, "claim"))
            if found is not None and found[1]["request_id"] == request_id:
                del self._rows[(index, "claim")]

    def mine(self, requester_key: str, limit: int) -> list[ApprovalRequest]:
        with self._lock:
            ids = [pk for (pk, rk), (_, e) in self._rows.items() if rk == "request" and e["requester"] == requester_key]
        found = [self.get(i) for i in ids]
        return sorted(found, key=lambda r: r.created_at, reverse=True)[:limit]

    # --- results ---
    def store_result(self, request_id: str, result: dict[str, Any]) -> str:
        text = json.dumps(result, ensure_ascii=False, separators=(",", ":"), default=str)
        with self._lock:
            self._put((request_id, "result"), {"text": text})
        return "inline"

    def load_result(self, request_id: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._rows.get((request_id, "result"))
        return None if found is None else json.loads(found[1]["text"])

    def close(self) -> None:
        return None


@dataclass(frozen=True)
class Stored:
    """What ``JournalReader`` hands back, as far as the domain tests read it."""

    record_id: str
    record: JournalRecord


class MemoryJournal:
    """``JournalSink`` plus the reads the tests make (``by_request``)."""

    def __init__(self) -> None:
        self._records: list[Stored] = []
        self._lock = threading.Lock()

    def write(self, record: JournalRecord) -> str:
        with self._lock:
            record_id = f"mem-{len(self._records):08d}"
            # stored as the journal stores it: a JSON round trip, the id assigned by the writer
            data = json.loads(json.dumps(record.to_dict(), default=str))
            self._records.append(Stored(record_id, JournalRecord.from_dict({**data, "record_id": record_id})))
            return record_id

    def all(self) -> list[Stored]:
        with self._lock:
            return list(self._records)

    def by_request(self, request_id: str) -> list[Stored]:
        with self._lock:
            return [s for s in self._records if s.record.request_id == request_id]

    def close(self) -> None:
        return None


class _Row(dict):
    """A stored entity with its ETag where the adapter's mapping reads it (``entity.metadata``)."""

    def __init__(self, data: dict[str, Any], etag: str) -> None:
        super().__init__(data)
        self.metadata = {"etag": etag}


class MemoryGrantStore:
    """``GrantRecords`` in a dict, through ``GrantStore``'s own row mapping."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._version = 0

    def _put(self, record: GrantRecord) -> None:
        self._version += 1
        entity = GrantStore._entity(record)
        self._rows[(entity["PartitionKey"], entity["RowKey"])] = (self._version, entity)

    def _record(self, found: tuple[int, dict[str, Any]]) -> GrantRecord:
        return GrantStore._record(_Row(found[1], str(found[0])))

    def create(self, record: GrantRecord) -> None:
        with self._lock:
            if (partition_for(record.principal), record.grant_id) in self._rows:
                raise Conflict(f"Grant {record.grant_id} already exists.", code="duplicate_request")
            self._put(record)

    def get(self, principal_key: str, grant_id: str) -> GrantRecord:
        with self._lock:
            found = self._rows.get((partition_for(principal_key), grant_id))
        if found is None:
            raise NotFound(f"No grant {grant_id}.", code="not_found")
        return self._record(found)

    def transition(self, principal_key: str, grant_id: str, allowed_from: set[str], to: str,
                   **changes: Any) -> GrantRecord | None:
        with self._lock:
            found = self._rows.get((partition_for(principal_key), grant_id))
            if found is None:
                raise NotFound(f"No grant {grant_id}.", code="not_found")
            current = self._record(found)
            if current.status not in allowed_from:
                return None
            self._put(replace(current, status=to, **changes))
        return self.get(principal_key, grant_id)

    def active(self, principal_key: str, target: str, now: datetime | None = None) -> list[Grant]:
        now = now or datetime.now(UTC)
        with self._lock:
            rows = [self._record(f) for (pk, _), f in self._rows.items() if pk == partition_for(principal_key)]
        return [r.as_grant() for r in rows
                if r.target == target and r.status == "active" and r.expires_at is not None and r.expires_at > now]

    def list_for(self, principal_key: str) -> list[GrantRecord]:
        with self._lock:
            rows = [self._record(f) for (pk, _), f in self._rows.items() if pk == partition_for(principal_key)]
        return sorted(rows, key=lambda g: g.requested_at, reverse=True)

    def close(self) -> None:
        return None
