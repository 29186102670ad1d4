"""Writes journal records: a chained Table row, durable before returning, and its write-once blob
copy right behind it (``copies.CopyQueue``; the writer refuses while copies are failing).

Chains without a global lock: each writer keeps a small pool of *lanes*; a lane is one hash
chain (its own random id, sequence and predecessor hash) written strictly in order, one record
in flight at a time. Concurrent calls take different lanes, so a process writes as many chains
in parallel as it has concurrent calls, and every chain is its own Table partition (no hot
partition, no cross-instance coordination). A lane whose write fails is retired (its chain ends
cleanly at its last durable record) and a fresh chain takes its place.

If the row cannot be written, or copies are failing or behind, the caller gets
``Unavailable(journal_unavailable)``; the execute path treats that as "do not run" (before) or
"do not answer with data" (after).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import rfc8785
from azure.core.exceptions import AzureError, ResourceExistsError

from broker.journal._canonical import canonical, normalize, sha256_hex
from broker.journal.copies import CopyQueue
from broker.journal.envelope import (
    GENESIS,
    Envelope,
    assemble_blob,
    blob_name,
    encode_row,
    format_at,
    partition_key,
    record_hash,
    record_id,
    row_holds_envelope,
)
from broker.journal.records import JournalRecord
from broker.journal.storage import ImmutableCopyExists, JournalStorage
from broker.problems import Unavailable

log = logging.getLogger("broker.journal")

Clock = Callable[[], datetime]
NO_ECHO = "return-no-content"  # the Table service's ``Prefer`` for an insert answered without its entity
_UNAVAILABLE = "The journal cannot be written, and the broker does not act or answer without its journal."


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Lane:
    """One chain being written: only the thread holding the lane touches it."""

    partition: str = ""
    day: date | None = None
    seq: int = 0
    prev: str = GENESIS
    last_at: datetime | None = None

    def roll(self, day: date) -> None:
        self.partition = partition_key(day, os.urandom(8).hex())
        self.day, self.seq, self.prev = day, 0, GENESIS


class _LanePool:
    """Idle lanes are reused most-recently-first, so chains stay few and long."""

    def __init__(self, max_lanes: int) -> None:
        self._idle: list[_Lane] = []
        self._count = 0
        self._max = max_lanes
        self._cond = threading.Condition()

    def acquire(self) -> _Lane:
        with self._cond:
            while True:
                if self._idle:
                    return self._idle.pop()
                if self._count < self._max:
                    self._count += 1
                    return _Lane()
                self._cond.wait()

    def release(self, lane: _Lane, *, healthy: bool) -> None:
        with self._cond:
            if healthy:
                self._idle.append(lane)
            else:
                self._count -= 1
            self._cond.notify()


class JournalWriter:
    def __init__(self, storage: JournalStorage, *, clock: Clock = _utc_now, max_lanes: int = 32) -> None:
        self._storage = storage
        self._clock = clock
        self._lanes = _LanePool(max_lanes)
        self.copies = CopyQueue(self._storage.put_immutable)
        self._ensured = False
        self._ensure_lock = threading.Lock()

    def _ensure(self) -> None:
        if self._ensured:
            return
        with self._ensure_lock:
            if not self._ensured:
                self._storage.ensure()
                self._ensured = True

    def write(self, record: JournalRecord) -> str:
        """Append ``record`` to a chain, durably in Table (its Blob copy queued); set and return its id."""
        self.copies.check()
        lane = self._lanes.acquire()
        healthy = False
        try:
            rid = self._append(lane, record)
            healthy = True
            return rid
        finally:
            self._lanes.release(lane, healthy=healthy)

    def _append(self, lane: _Lane, record: JournalRecord) -> str:
        now = self._clock()
        if lane.day != now.date():
            lane.roll(now.date())
            lane.last_at = None
        at = now if lane.last_at is None or now > lane.last_at else lane.last_at + timedelta(microseconds=1)
        seq = lane.seq + 1
        rid = record_id(lane.partition, seq)
        try:
            body = normalize({**record.to_dict(), "record_id": rid})
            response = body.pop("response", None)
            response_bytes = canonical(response) if response is not None else None
            response_text = response_bytes.decode("utf-8") if response_bytes is not None else None
            env = Envelope(id=rid, chain=lane.partition, seq=seq, prev=lane.prev, at=format_at(at), record=body,
                           response_sha256=sha256_hex(response_bytes) if response_bytes is not None else None,
                           response_chars=len(response_text or ""))
            env_bytes = env.canonical()
        except (ValueError, TypeError, rfc8785.CanonicalizationError) as exc:
            raise Unavailable(_UNAVAILABLE, code="journal_unavailable") from exc
        digest = record_hash(env_bytes)
        entity = encode_row(env, env_bytes, digest, response_text)
        self._store(entity, blob_name(lane.partition, seq), assemble_blob(env_bytes, digest, response_bytes),
                    record.event, response_text is not None, first=seq == 1)
        lane.seq, lane.prev, lane.last_at = seq, digest, at
        record.record_id = rid
        return rid

    def _store(self, entity: dict, name: str, blob: bytes, event: str, has_response: bool, *,
               first: bool = False) -> None:
        """The Table row, durably; its write-once copy queued behind it. A row that is not
        self-contained (its envelope or response lives only in the blob) waits for the blob too:
        durable means the content, not a reference to it. A chain's first record waits for its
        copy right after the row: the sealer finds chains in the container, so even a host killed
        before it copied anything else of a new chain leaves the chain where the sealer looks
        (one round trip per chain; if that copy fails it is queued, and the queue fails closed)."""
        metadata = {"event": event.replace(".", "_")}
        self_contained = row_holds_envelope(entity) and (has_response is False or "response" in entity)
        try:
            self._ensure()
            if not self_contained:
                self._storage.put_immutable(name, blob, metadata)
            # the service's echo of the row is never read: without it the answer is a bare 204,
            # so neither the storage service nor the SDK spends time on a copy of the record
            self._storage.table.create_entity(entity, response_preference=NO_ECHO)
        except (ImmutableCopyExists, ResourceExistsError) as exc:
            log.error("journal: refused to overwrite %s: %s", name, exc)
            raise Unavailable("The journal found an existing record where it was about to write; it overwrote "
                              "nothing, and the broker does not act or answer without its journal.",
                              code="journal_unavailable", extra={"reason": "immutable_copy_exists"}) from exc
        except (AzureError, OSError) as exc:
            raise Unavailable(_UNAVAILABLE, code="journal_unavailable") from exc
        if not self_contained:
            return
        if first:
            try:
                self._storage.put_immutable(name, blob, metadata)
                return
            except (ImmutableCopyExists, AzureError, OSError):
                pass  # the queue retries it (or reports the conflict), and refuses new records meanwhile
        self.copies.submit(name, blob, metadata)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued immutable copy is written."""
        return self.copies.flush(timeout)

    def close(self) -> None:
        self.copies.close()
