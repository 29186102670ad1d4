"""Reads the journal back: one record by id, queries in time order, a time range for export.

The reader trusts what it reads; ``verify`` is what checks it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core.exceptions import ResourceNotFoundError

from broker.journal.envelope import Envelope, blob_name, parse_record_id, row_envelope_text, row_holds_envelope
from broker.journal.query import JournalQuery
from broker.journal.records import JournalRecord
from broker.journal.storage import JournalStorage


@dataclass
class StoredRecord:
    """A record as stored: its content, its place in its chain, its hash."""

    record: JournalRecord
    envelope: Envelope
    hash: str

    @property
    def id(self) -> str:
        return self.envelope.id

    @property
    def at(self) -> str:
        return self.envelope.at

    def to_dict(self) -> dict[str, Any]:
        """The export shape: the record's fields plus ``journal`` (where it sits and its hash)."""
        env = self.envelope
        return {**self.record.to_dict(),
                "journal": {"chain": env.chain, "seq": env.seq, "prev": env.prev, "hash": self.hash, "at": env.at}}


class JournalReader:
    def __init__(self, storage: JournalStorage) -> None:
        self._storage = storage

    def _stored(self, entity: dict[str, Any], with_response: bool = True) -> StoredRecord:
        copy: dict[str, Any] | None = None
        if row_holds_envelope(entity):
            env = Envelope.from_bytes(row_envelope_text(entity))
        else:  # a large record: the row refers to its blob
            copy = self._copy(entity["PartitionKey"], int(entity["RowKey"]))
            env = Envelope.from_dict(copy["envelope"])
        record = JournalRecord.from_dict(env.record)
        if with_response and env.response_sha256 is not None:
            text = entity.get("response")
            if text is not None:
                record.response = json.loads(text)
            else:
                copy = copy or self._copy(env.chain, env.seq)
                record.response = copy.get("response")
        return StoredRecord(record, env, str(entity.get("hash", "")))

    def _copy(self, pk: str, seq: int) -> dict[str, Any]:
        blob = self._storage.read_blob(blob_name(pk, seq))
        if blob is None:
            raise LookupError(f"the immutable copy of {pk}/{seq} is missing (run journal verify)")
        return json.loads(blob)

    def get(self, record_id: str) -> StoredRecord | None:
        keys = parse_record_id(record_id)
        if keys is None:
            return None
        try:
            return self._stored(self._storage.table.get_entity(*keys))
        except ResourceNotFoundError:
            return None

    def query(self, q: JournalQuery, *, with_response: bool = True,
              now: datetime | None = None) -> list[StoredRecord]:
        """Matching records in time order (oldest first); with a limit, the newest ``limit``.

        Reads one UTC day at a time, newest first, and stops once the limit is reached, so a
        limited query over a long window holds at most a day's matches (plus the limit)."""
        since, until = q.window(now)
        found: list[dict[str, Any]] = []
        day = until.date()
        while day >= since.date():
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            lo, hi = max(since, start), min(until, start + timedelta(days=1))
            if lo < hi:
                batch = list(self._storage.table.query_entities(q.table_filter(lo, hi)))
                batch.sort(key=lambda e: (e.get("at", ""), e.get("record_id", "")))
                found = batch + found
                if q.limit is not None and len(found) >= q.limit:
                    found = found[-q.limit:]
                    break
            day -= timedelta(days=1)
        return [self._stored(e, with_response) for e in found]

    def iter_range(self, since: datetime, until: datetime, *, with_response: bool = True) -> Iterator[StoredRecord]:
        """Every record in [since, until) in time order, one UTC day in memory at a time."""
        day_start = datetime(since.year, since.month, since.day, tzinfo=UTC)
        while day_start < until:
            lo, hi = max(since, day_start), min(until, day_start + timedelta(days=1))
            yield from self.query(JournalQuery(since=lo, until=hi), with_response=with_response)
            day_start += timedelta(days=1)

    def recent(self, limit: int = 20, now: datetime | None = None) -> list[StoredRecord]:
        """The newest ``limit`` records of the last 31 days, newest first."""
        now = now or datetime.now(UTC)
        found = self.query(JournalQuery(until=now + timedelta(seconds=1), limit=limit), with_response=False)
        return list(reversed(found))

    def by_request(self, request_id: str, since: datetime | None = None) -> list[StoredRecord]:
        return self.query(JournalQuery(request_id=request_id, since=since))
