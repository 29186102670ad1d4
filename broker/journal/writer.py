"""Writes journal records: a Table row and a write-once blob, both durable before returning.

If either write fails the caller gets ``Unavailable(journal_unavailable)``; the execute path
treats that as "do not run" (before) or "do not answer with data" (after).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError

from broker.journal.records import JournalRecord, record_day
from broker.journal.storage import JournalStorage
from broker.problems import Unavailable

INLINE_BODY_CHARS = 30_000  # a Table string property holds 64 KiB of UTF-16


def partition_for(record_id: str) -> str:
    """Records are partitioned by the UTC day of their id's timestamp."""
    return record_day(record_id).strftime("%Y%m%d")


def blob_name_for(record_id: str) -> str:
    return f"records/{record_day(record_id).strftime('%Y/%m/%d')}/{record_id}.json"


class JournalWriter:
    def __init__(self, storage: JournalStorage) -> None:
        self._storage = storage
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="journal")
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
        """Persist one record to Table and Blob (in parallel); return its id."""
        body = record.canonical_json()
        entity = self._entity(record, body)
        try:
            self._ensure()
            blob = self._pool.submit(self._write_blob, record, body)
            self._storage.table.create_entity(entity)
            blob.result()
        except ResourceExistsError as exc:
            raise Unavailable("A journal record with this id already exists; nothing was overwritten.",
                              code="journal_conflict") from exc
        except (AzureError, OSError) as exc:
            raise Unavailable("The journal cannot be written, so the broker will not run the command.",
                              code="journal_unavailable") from exc
        return record.record_id

    def _write_blob(self, record: JournalRecord, body: str) -> None:
        self._storage.container.upload_blob(
            blob_name_for(record.record_id), body.encode("utf-8"), overwrite=False,
            metadata={"event": record.event.replace(".", "_")},
        )

    @staticmethod
    def _entity(record: JournalRecord, body: str) -> dict[str, Any]:
        entity: dict[str, Any] = {
            "PartitionKey": partition_for(record.record_id),
            "RowKey": record.record_id,
            "event": record.event,
            "request_id": record.request_id,
            "principal": f"{record.principal.get('tenant_id', '')}/{record.principal.get('object_id', '')}",
            "target": record.target,
            "effect": record.decision.get("effect", ""),
            "status": record.outcome.get("status", ""),
            "time": record.time,
            "blob": blob_name_for(record.record_id),
        }
        if len(body) <= INLINE_BODY_CHARS:
            entity["body"] = body
        return entity

    def close(self) -> None:
        self._pool.shutdown(wait=True)

