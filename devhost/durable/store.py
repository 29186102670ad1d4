"""The task hub in Azure Table storage (Azurite locally), through the real azure-data-tables client.

``{hub}History``: one partition per instance. Rows ``0000000000000000``.. are the history
events of the current execution (columns named like the events, ``_Timestamp`` because
``Timestamp`` is reserved), ``inbox-*`` rows are messages waiting for the next episode,
``act-*`` rows mark activities that have started, and ``sentinel`` holds the instance's state and
the number of committed events: the commit point. An episode commits as one entity-group
transaction on that partition — new events, consumed messages deleted, sentinel updated only if
its ETag is unchanged — so an episode is applied entirely or not at all.

``{hub}Instances``: one row per instance (name, status, input, output, custom status, times),
a projection written after each commit and repaired at start-up; queries read it.

Values too big for a table property (64 KiB) go to the ``{hub}-largemessages`` blob container,
as the real Azure Storage provider does.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import EdmType, EntityProperty, TableServiceClient, TableTransactionError, UpdateMode
from azure.storage.blob import BlobServiceClient

from devhost.durable import history as h
from devhost.durable.history import Event
from devhost.durable.model import InstanceRecord, InstanceState, Message

log = logging.getLogger("devhost.durable")

SENTINEL = "sentinel"
MAX_PROPERTY_BYTES = 60_000  # Table storage's limit is 64 KiB of UTF-16 per property
MAX_BATCH_OPS = 100
MAX_BATCH_BYTES = 3_500_000  # the service's limit is 4 MiB per transaction
_STATE_FIELDS = {"name": "Name", "execution_id": "ExecutionId", "status": "RuntimeStatus", "input": "Input",
                 "output": "Output", "custom_status": "CustomStatus", "created": "CreatedTime",
                 "updated": "LastUpdatedTime", "completed": "CompletedTime", "history_length": "HistoryLength",
                 "diagnostics": "Diagnostics"}
_MESSAGE_FIELDS = ("kind", "enqueued", "execution_id", "task_id", "name", "data", "failed", "details", "fire_at")


class ConcurrencyError(Exception):
    """Someone else committed to this instance first (its sentinel's ETag changed)."""


class InstanceExistsError(Exception):
    def __init__(self, status: str) -> None:
        super().__init__(f"An Orchestration instance with the status {status} already exists.")
        self.status = status


def history_key(seq: int) -> str:
    return f"{seq:016X}"


def _is_history_key(key: str) -> bool:
    return len(key) == 16 and all(c in "0123456789ABCDEF" for c in key)


class TaskHubStore:
    def __init__(self, connection_string: str, hub: str) -> None:
        self.hub = hub
        self.service = TableServiceClient.from_connection_string(connection_string)
        self.instances = self.service.get_table_client(f"{hub}Instances")
        self.history = self.service.get_table_client(f"{hub}History")
        self.blobs = BlobServiceClient.from_connection_string(connection_string).get_container_client(
            f"{hub.lower()}-largemessages")

    def create(self) -> None:
        for table in (self.instances.table_name, self.history.table_name):
            self.service.create_table_if_not_exists(table)
        with contextlib.suppress(ResourceExistsError):
            self.blobs.create_container()

    def close(self) -> None:
        self.instances.close()
        self.history.close()
        self.service.close()
        self.blobs.close()

    # --- large values --------------------------------------------------------------------
    def _pack(self, entity: dict[str, Any]) -> dict[str, Any]:
        for key, value in list(entity.items()):
            if isinstance(value, str) and len(value.encode("utf-16-le")) > MAX_PROPERTY_BYTES:
                blob = f"{entity['PartitionKey']}/{entity['RowKey']}/{key}"
                self.blobs.upload_blob(blob, value.encode(), overwrite=True)
                del entity[key]
                entity[f"{key}BlobName"] = blob
        return entity

    def _unpack(self, entity: dict[str, Any]) -> dict[str, Any]:
        out = dict(entity)
        for key in [k for k in entity if k.endswith("BlobName")]:
            out[key[: -len("BlobName")]] = self.blobs.download_blob(out.pop(key)).readall().decode()
        return out

    # --- rows <-> records ----------------------------------------------------------------
    def _state_entity(self, state: InstanceState) -> dict[str, Any]:
        entity: dict[str, Any] = {"PartitionKey": state.instance_id, "RowKey": SENTINEL}
        for attr, column in _STATE_FIELDS.items():
            value = getattr(state, attr)
            if value is not None:
                entity[column] = value
        return self._pack(entity)

    @staticmethod
    def state_from_row(instance_id: str, row: dict[str, Any]) -> InstanceState:
        values = {attr: row.get(column) for attr, column in _STATE_FIELDS.items()}
        for attr in ("created", "updated", "completed"):
            if isinstance(values[attr], datetime):
                values[attr] = datetime.fromtimestamp(values[attr].timestamp(), values[attr].tzinfo)
        values["history_length"] = int(values["history_length"] or 0)
        etag = row.metadata.get("etag") if hasattr(row, "metadata") else None
        return InstanceState(instance_id=instance_id, etag=etag, **values)

    def _event_entity(self, instance_id: str, execution_id: str, seq: int, event: Event) -> dict[str, Any]:
        entity: dict[str, Any] = {"PartitionKey": instance_id, "RowKey": history_key(seq),
                                  "ExecutionId": execution_id}
        for key, value in event.items():
            if key == "IsPlayed" or value is None:
                continue
            if key == "Timestamp":
                entity["_Timestamp"] = value
            elif key == "EventType":
                entity["EventType"] = h.event_type_name(value)
            elif isinstance(value, dict | list):
                entity[key] = json.dumps(value)
                entity.setdefault("_JsonColumns", "")
                entity["_JsonColumns"] += f"{key},"
            else:
                entity[key] = value
        return self._pack(entity)

    @staticmethod
    def _event(row: dict[str, Any]) -> Event:
        json_columns = {c for c in str(row.get("_JsonColumns", "")).split(",") if c}
        event: Event = {"EventType": int(h.event_type_from_name(row["EventType"])), "EventId": row.get("EventId", -1),
                        "IsPlayed": False, "Timestamp": row["_Timestamp"]}
        for key, value in row.items():
            if key.startswith("__") or key in ("PartitionKey", "RowKey", "ExecutionId", "EventType", "EventId",
                                                "_Timestamp", "_JsonColumns"):
                continue
            event[key] = json.loads(value) if key in json_columns else value
        if event["EventType"] == int(h.EventType.EXECUTION_STARTED):
            event.setdefault("ParentInstance", None)
            event.setdefault("Tags", None)
            event.setdefault("Input", None)
        return event

    def _message_entity(self, instance_id: str, message: Message) -> dict[str, Any]:
        entity: dict[str, Any] = {"PartitionKey": instance_id, "RowKey": message.key}
        for attr in _MESSAGE_FIELDS:
            value = getattr(message, attr)
            if value is not None:
                entity[attr] = value
        entity["enqueued"] = EntityProperty(message.enqueued, EdmType.INT64)
        return self._pack(entity)

    @staticmethod
    def _message(row: dict[str, Any]) -> Message:
        values = {attr: row.get(attr) for attr in _MESSAGE_FIELDS}
        enqueued = values["enqueued"]
        values["enqueued"] = int(getattr(enqueued, "value", enqueued) or 0)
        values["failed"] = bool(values["failed"])
        return Message(key=row["RowKey"], **values)

    # --- reads ---------------------------------------------------------------------------
    def load(self, instance_id: str) -> InstanceRecord | None:
        rows = [self._unpack(r) | {"__etag": r.metadata.get("etag")}
                for r in self.history.query_entities("PartitionKey eq @pk", parameters={"pk": instance_id})]
        sentinel = next((r for r in rows if r["RowKey"] == SENTINEL), None)
        if sentinel is None:
            return None
        state = self.state_from_row(instance_id, sentinel)
        state.etag = sentinel["__etag"]
        events = [self._event(r) for r in rows if _is_history_key(r["RowKey"])
                  and r.get("ExecutionId") == state.execution_id and int(r["RowKey"], 16) < state.history_length]
        messages = [self._message(r) for r in rows if r["RowKey"].startswith("inbox-")]
        markers = {r["RowKey"]: r for r in rows if r["RowKey"].startswith("act-")}
        return InstanceRecord(state, events, messages, markers)

    def get_state(self, instance_id: str) -> InstanceState | None:
        try:
            row = self.history.get_entity(instance_id, SENTINEL)
        except ResourceNotFoundError:
            return None
        state = self.state_from_row(instance_id, self._unpack(row))
        state.etag = row.metadata.get("etag")
        return state

    def all_instances(self) -> Iterator[InstanceState]:
        for row in self.history.query_entities("RowKey eq @rk", parameters={"rk": SENTINEL}):
            state = self.state_from_row(row["PartitionKey"], self._unpack(row))
            yield state

    def projections(self) -> Iterator[dict[str, Any]]:
        for row in self.instances.list_entities():
            yield self._unpack(row)

    # --- writes --------------------------------------------------------------------------
    def create_instance(self, state: InstanceState) -> InstanceState:
        """Create (or replace a finished) instance together with its start message."""
        existing = self.get_state(state.instance_id)
        start = self._message_entity(state.instance_id, Message.start(state.execution_id, state.input))
        if existing is not None:
            if existing.active:
                raise InstanceExistsError(existing.status)
            ops = [("update", self._state_entity(state),
                    {"mode": UpdateMode.REPLACE, "etag": existing.etag,
                     "match_condition": MatchConditions.IfNotModified}),
                   ("upsert", start, {"mode": UpdateMode.REPLACE})]
        else:
            ops = [("create", self._state_entity(state)), ("upsert", start, {"mode": UpdateMode.REPLACE})]
        try:
            result = self.history.submit_transaction(ops)
        except (TableTransactionError, ResourceExistsError, HttpResponseError) as exc:
            if _is_conflict(exc):
                current = self.get_state(state.instance_id)
                raise InstanceExistsError(current.status if current else "Pending") from exc
            raise
        state.etag = result[0].get("etag")
        if existing is not None:
            self.delete_stale_rows(state.instance_id, state.execution_id)
        self.project(state)
        return state

    def put_message(self, instance_id: str, message: Message) -> bool:
        """Add a message; False when one with the same key is already there (a duplicate)."""
        try:
            self.history.create_entity(self._message_entity(instance_id, message))
            return True
        except ResourceExistsError:
            return False

    def mark_activity(self, instance_id: str, key: str, started: datetime) -> int:
        """Record that an activity starts; returns the attempt number (2+ means it may have run)."""
        try:
            row = self.history.get_entity(instance_id, key)
            attempt = int(row.get("Attempts", 0)) + 1
        except ResourceNotFoundError:
            attempt = 1
        self.history.upsert_entity({"PartitionKey": instance_id, "RowKey": key, "Attempts": attempt,
                                    "StartedAt": started}, mode=UpdateMode.REPLACE)
        return attempt

    def commit(self, state: InstanceState, previous_length: int, new_events: list[Event], consumed: Iterable[str],
               new_messages: Iterable[Message] = (), *, reset: bool = False) -> InstanceState:
        """Apply an episode: append events, delete consumed rows, move the sentinel (ETag-checked)."""
        start = 0 if reset else previous_length
        rows = [self._event_entity(state.instance_id, state.execution_id, start + i, e)
                for i, e in enumerate(new_events)]
        state.history_length = start + len(new_events)
        ops: list[tuple[Any, ...]] = [("upsert", r, {"mode": UpdateMode.REPLACE}) for r in rows]
        ops += [("upsert", self._message_entity(state.instance_id, m), {"mode": UpdateMode.REPLACE})
                for m in new_messages]
        deletes = [("delete", {"PartitionKey": state.instance_id, "RowKey": key}) for key in dict.fromkeys(consumed)]
        sentinel = ("update", self._state_entity(state),
                    {"mode": UpdateMode.REPLACE, "etag": state.etag, "match_condition": MatchConditions.IfNotModified})
        # Usually one transaction. A huge episode writes its event rows first: they stay invisible
        # until the sentinel (written last, with the ETag check) counts them. Deletes that do not
        # fit go after the commit; a message left behind is recognised as a duplicate later.
        head, final = _split(ops, reserve=1)
        for batch in head:
            self.history.submit_transaction(batch)
        room = MAX_BATCH_OPS - len(final) - 1
        final += deletes[:room]
        try:
            result = self.history.submit_transaction([*final, sentinel])
        except (TableTransactionError, HttpResponseError) as exc:
            if _is_conflict(exc):
                raise ConcurrencyError(state.instance_id) from exc
            raise
        state.etag = result[-1].get("etag")
        for batch in _chunks(deletes[room:], MAX_BATCH_OPS):
            self._delete_quietly(batch)
        if reset:
            self.delete_stale_rows(state.instance_id, state.execution_id)
        return state

    def delete_rows(self, instance_id: str, keys: Iterable[str]) -> None:
        ops = [("delete", {"PartitionKey": instance_id, "RowKey": key}) for key in dict.fromkeys(keys)]
        for batch in _chunks(ops, MAX_BATCH_OPS):
            self._delete_quietly(batch)

    def _delete_quietly(self, batch: list[tuple[Any, ...]]) -> None:
        try:
            self.history.submit_transaction(batch)
        except (TableTransactionError, HttpResponseError):
            for op in batch:  # one of them is gone already: delete the rest one by one
                with contextlib.suppress(ResourceNotFoundError):
                    self.history.delete_entity(op[1]["PartitionKey"], op[1]["RowKey"])

    def delete_stale_rows(self, instance_id: str, execution_id: str) -> None:
        """History rows of earlier executions (after a restart or continue-as-new)."""
        rows = self.history.query_entities("PartitionKey eq @pk", parameters={"pk": instance_id},
                                           select=["RowKey", "ExecutionId"])
        self.delete_rows(instance_id, [r["RowKey"] for r in rows
                                       if _is_history_key(r["RowKey"]) and r.get("ExecutionId") != execution_id])

    def project(self, state: InstanceState) -> None:
        entity = {"PartitionKey": state.instance_id, "RowKey": "", "TaskHubName": self.hub}
        for attr, column in _STATE_FIELDS.items():
            value = getattr(state, attr)
            if value is not None and attr != "history_length":
                entity[column] = value
        self.instances.upsert_entity(self._pack(entity), mode=UpdateMode.REPLACE)

    def purge(self, instance_id: str) -> bool:
        keys = [r["RowKey"] for r in self.history.query_entities(
            "PartitionKey eq @pk", parameters={"pk": instance_id}, select=["RowKey"])]
        found = SENTINEL in keys
        self.delete_rows(instance_id, keys)
        with contextlib.suppress(ResourceNotFoundError):
            self.instances.delete_entity(instance_id, "")
        for blob in self.blobs.list_blobs(name_starts_with=f"{instance_id}/"):
            self.blobs.delete_blob(blob.name)
        return found


def _is_conflict(exc: Exception) -> bool:
    code = getattr(exc, "error_code", None) or ""
    status = getattr(exc, "status_code", None)
    return status in (409, 412) or str(code) in ("UpdateConditionNotSatisfied", "EntityAlreadyExists") \
        or "UpdateConditionNotSatisfied" in str(exc) or "EntityAlreadyExists" in str(exc)


def _size(op: tuple[Any, ...]) -> int:
    return len(json.dumps(op[1], default=str))


def _chunks(ops: list[tuple[Any, ...]], limit: int) -> list[list[tuple[Any, ...]]]:
    batches: list[list[tuple[Any, ...]]] = []
    current: list[tuple[Any, ...]] = []
    size = 0
    for op in ops:
        if current and (len(current) >= limit or size + _size(op) > MAX_BATCH_BYTES):
            batches.append(current)
            current, size = [], 0
        current.append(op)
        size += _size(op)
    if current:
        batches.append(current)
    return batches


def _split(ops: list[tuple[Any, ...]], reserve: int) -> tuple[list[list[tuple[Any, ...]]], list[tuple[Any, ...]]]:
    """Earlier batches plus a final batch that still has room for ``reserve`` more operations."""
    batches = _chunks(ops, MAX_BATCH_OPS - reserve)
    if not batches:
        return [], []
    final = batches.pop()
    return batches, final
