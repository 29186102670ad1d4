"""Reads the journal back: newest first, one record, or a request's whole story."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from azure.core.exceptions import ResourceNotFoundError

from broker.journal.records import JournalRecord
from broker.journal.storage import JournalStorage
from broker.journal.writer import partition_for


class JournalReader:
    def __init__(self, storage: JournalStorage) -> None:
        self._storage = storage

    def _body(self, entity: dict) -> JournalRecord:
        body = entity.get("body")
        if body is None:
            body = self._storage.container.download_blob(entity["blob"]).readall().decode("utf-8")
        return JournalRecord.from_dict(json.loads(body))

    def recent(self, limit: int = 20, days: int = 31) -> list[JournalRecord]:
        """The newest ``limit`` records, scanning day partitions backwards."""
        found: list[JournalRecord] = []
        day = datetime.now(UTC).date()
        for _ in range(days):
            pk = day.strftime("%Y%m%d")
            entities = list(self._storage.table.query_entities("PartitionKey eq @pk", parameters={"pk": pk}))
            entities.sort(key=lambda e: e["RowKey"], reverse=True)
            for entity in entities:
                found.append(self._body(entity))
                if len(found) >= limit:
                    return found
            day -= timedelta(days=1)
        return found

    def get(self, record_id: str) -> JournalRecord | None:
        try:
            pk = partition_for(record_id)
        except ValueError:
            return None
        try:
            return self._body(self._storage.table.get_entity(pk, record_id))
        except ResourceNotFoundError:
            return None

    def by_request(self, request_id: str) -> Iterator[JournalRecord]:
        for entity in self._storage.table.query_entities("request_id eq @rid",
                                                         parameters={"rid": request_id}):
            yield self._body(entity)
